"""`optbench bench` (measure a model) and `optbench demo` (train, measure, report)."""

from __future__ import annotations

from pathlib import Path

from optbench.cli.common import default
from optbench.config import parse_ints


def add_parsers(sub) -> None:
    from optbench.bench import BenchConfig as B
    from optbench.demo import DemoConfig as D

    b = sub.add_parser("bench", help="measure a model across runtimes and batch sizes",
                       description="Measure latency, memory, size (and accuracy with --data) of "
                       "a zoo model, a training checkpoint, or an .onnx file.")
    b.add_argument("model", help="zoo name (resnet18, resnet50, mobilenet_v2, ...), "
                   "torchvision:<name>, timm:<name>, python:<module>:<function>, or an .onnx "
                   "path")
    b.add_argument("--checkpoint", help="weights for a zoo model: an optbench training "
                   "checkpoint or a state dict (.pt), loaded with weights_only=True")
    b.add_argument("--weights", help="torchvision weights for a zoo model, e.g. DEFAULT")
    b.add_argument("--num-classes", type=int, default=10)
    b.add_argument("--runtimes", default=default(B, "runtimes"),
                   help="comma-separated; the first is the speed-up baseline")
    b.add_argument("--batch-sizes", default=default(B, "batch_sizes"),
                   help="comma-separated, e.g. 1,8,32")
    b.add_argument("--input-shape", default=default(B, "input_shape"),
                   help="one example's shape, C,H,W")
    b.add_argument("--device", default=default(B, "device"), help="cpu or cuda[:N]")
    b.add_argument("--threads", type=int, default=default(B, "threads"),
                   help="intra-op threads (0 = default)")
    b.add_argument("--min-time", type=float, default=default(B, "min_time_s"),
                   help="seconds of timing at least, per entry")
    b.add_argument("--max-time", type=float, default=default(B, "max_time_s"),
                   help="seconds of timing at most, per entry")
    b.add_argument("--processes", type=int, default=default(B, "processes"),
                   help="time in this many fresh worker processes, pooled; speed-up CIs then "
                   "include run-to-run variation (use >= 3 for numbers you publish)")
    b.add_argument("--memory", choices=("shared", "process"), default=default(B, "memory"),
                   help="process: each entry's memory in a fresh process of its own (exact "
                   "attribution, first call apart); shared: in this process (quick)")
    b.add_argument("--data", action="store_true",
                   help="also measure accuracy on the test split of --dataset")
    b.add_argument("--dataset", default="fashion-mnist",
                   choices=("fashion-mnist", "image-folder", "npz", "python"),
                   help="what --data reads (as a recipe's [data] dataset): image-folder and npz "
                   "take --data-dir, python takes --entry; their test split is the given test "
                   "part, or the seeded 20%% split of --seed")
    b.add_argument("--data-dir", help="Fashion-MNIST's idx folder, the image folder, or the "
                   ".npz file")
    b.add_argument("--entry", default="", help="python datasets: package.module:function")
    b.add_argument("--seed", type=int, default=0, help="the split seed of your dataset")
    b.add_argument("--eval-limit", type=int, default=0, help="test images for --data (0 = all)")
    b.add_argument("--out", default="results/bench", help="folder for result.json/.csv/.md")
    b.set_defaults(func=bench)

    d = sub.add_parser("demo", help="train a small model on Fashion-MNIST, benchmark it, report",
                       description="The README's main job. Resumes from its checkpoint.")
    d.add_argument("--out", default="results/demo")
    d.add_argument("--work", default="runs/demo", help="folder for the training checkpoint")
    d.add_argument("--model", default=default(D, "model"))
    d.add_argument("--epochs", type=int, default=default(D, "epochs"))
    d.add_argument("--train-limit", type=int, default=default(D, "train_limit"))
    d.add_argument("--test-limit", type=int, default=default(D, "test_limit"),
                   help="0 = the whole test split")
    d.add_argument("--max-time", type=float, default=default(D, "max_time_s"))
    d.add_argument("--threads", type=int, default=default(D, "threads"))
    d.add_argument("--data-dir")
    d.set_defaults(func=demo)


def bench(args) -> int:
    from optbench.bench import BenchConfig, bench
    from optbench.report import save_bench

    config = BenchConfig(runtimes=runtime_names(args.runtimes),
                         batch_sizes=parse_ints(args.batch_sizes, "--batch-sizes"),
                         input_shape=parse_ints(args.input_shape, "--input-shape"),
                         device=args.device, threads=args.threads, min_time_s=args.min_time,
                         max_time_s=args.max_time, processes=args.processes,
                         memory=args.memory)
    if args.model.endswith(".onnx"):
        model = args.model
    else:
        from optbench.models import load_model

        model = load_model(args.model, num_classes=args.num_classes,
                           in_channels=config.input_shape[0], weights=args.weights,
                           checkpoint=args.checkpoint)
    eval_data = None
    if args.data:   # the recipes' own loader: same sources, splits and normalization
        from optbench.pipeline.recipe import DataConfig
        from optbench.pipeline.run import load_data

        data = DataConfig(dataset=args.dataset, data_dir=args.data_dir or "", entry=args.entry,
                          image_size=config.input_shape[-1], channels=config.input_shape[0],
                          test_limit=args.eval_limit, seed=args.seed)
        eval_data = load_data(data)["test"]
    result = bench(model, config, label=Path(args.model).stem, eval_data=eval_data)
    paths = save_bench(result, args.out)
    print(paths["md"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def demo(args) -> int:
    from optbench.demo import DemoConfig, run_demo

    config = DemoConfig(model=args.model, epochs=args.epochs, train_limit=args.train_limit,
                        test_limit=args.test_limit, max_time_s=args.max_time,
                        threads=args.threads)
    paths = run_demo(args.out, config, data_dir=args.data_dir, work_dir=args.work)
    print(paths["md"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def runtime_names(text: str) -> tuple[str, ...]:
    from optbench.runtime import get_runtime

    names = tuple(v.strip() for v in text.split(",") if v.strip())
    for name in names:
        get_runtime(name)  # raises ConfigError listing the registered runtimes
    return names
