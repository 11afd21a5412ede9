import json
import subprocess
import sys

import pytest
import torch

from optbench.cli import main
from optbench.transforms.export import export_onnx


@pytest.mark.parametrize("verb", ["", "bench", "demo", "env"])
def test_every_verb_has_help(verb):
    args = [sys.executable, "-m", "optbench", *([verb] if verb else []), "--help"]
    out = subprocess.run(args, capture_output=True, text=True)
    assert out.returncode == 0 and "usage: optbench" in out.stdout


def test_bench_an_onnx_file(tiny_model, tmp_path, capsys):
    path = export_onnx(tiny_model, torch.randn(1, 1, 16, 16), tmp_path / "tiny.onnx")
    code = main(["bench", str(path), "--runtimes", "onnxruntime", "--batch-sizes", "1,2",
                 "--input-shape", "1,16,16", "--min-time", "0.05", "--max-time", "0.2",
                 "--out", str(tmp_path / "out")])
    assert code == 0
    data = json.loads((tmp_path / "out" / "result.json").read_text())
    assert [r["batch_size"] for r in data["rows"]] == [1, 2]
    assert "| tiny / onnxruntime | 2 |" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["bench", "resnet18", "--batch-sizes", "one"], "--batch-sizes takes comma-separated"),
    (["bench", "resnet18", "--runtimes", "tvm"], "registered runtimes are"),
    (["bench", "alexnet"], "the zoo has"),
    (["bench", "resnet18", "--checkpoint", "/nonexistent.pt"], "checkpoint not found"),
    (["bench", "/nonexistent.onnx", "--runtimes", "onnxruntime"], "ONNX file not found"),
])
def test_bad_input_exits_2_with_a_message(args, message, capsys):
    code = main(args)
    assert code == 2
    assert message in capsys.readouterr().err


def test_checkpoint_of_another_shape_is_explained(tmp_path, capsys):
    from optbench.models import build_model

    path = tmp_path / "w.pt"
    torch.save(build_model("resnet18", num_classes=5).state_dict(), path)
    code = main(["bench", "resnet18", "--checkpoint", str(path), "--num-classes", "10"])
    assert code == 2 and "--num-classes" in capsys.readouterr().err


def test_demo_on_real_data_writes_the_report(fashion_dir, tmp_path):
    code = main(["demo", "--out", str(tmp_path), "--work", str(tmp_path / "work"),
                 "--train-limit", "256", "--test-limit", "256",
                 "--max-time", "0.2", "--data-dir", str(fashion_dir)])
    assert code == 0
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["sections"]["training"]["test_examples"] == 256
    assert {r["runtime"] for r in data["rows"]} == {"torch-eager", "torch-compile", "onnxruntime"}
    assert (tmp_path / "work" / "resnet18.ckpt").is_file()
    assert "/ torch-compile | 8 |" in (tmp_path / "report.md").read_text()


def test_flag_defaults_are_the_config_classes_defaults():
    from optbench.bench import BenchConfig
    from optbench.cli import build_parser
    from optbench.config import parse_ints
    from optbench.demo import DemoConfig

    args = build_parser().parse_args(["bench", "resnet18"])
    b = BenchConfig()
    assert tuple(args.runtimes.split(",")) == b.runtimes
    assert parse_ints(args.batch_sizes, "x") == b.batch_sizes
    assert parse_ints(args.input_shape, "x") == b.input_shape
    assert (args.min_time, args.max_time, args.threads) == (b.min_time_s, b.max_time_s,
                                                             b.threads)
    demo = build_parser().parse_args(["demo"])
    d = DemoConfig()
    assert (demo.model, demo.epochs, demo.train_limit, demo.max_time) == (
        d.model, d.epochs, d.train_limit, d.max_time_s)


def test_bench_measures_accuracy_on_your_image_folder(tmp_path):
    """`optbench bench --data --dataset image-folder`: a model outside the zoo, scored on the
    test split of a colour image folder read by the recipes' own loader."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(("red", "green")):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(15):
            x = rng.integers(0, 60, (10, 10, 3), dtype=np.uint8)
            x[..., k] += 150
            Image.fromarray(x).save(tmp_path / "imgs" / name / f"{i}.jpg")
    code = main(["bench", "torchvision:shufflenet_v2_x0_5", "--num-classes", "2",
                 "--input-shape", "3,16,16", "--runtimes", "onnxruntime", "--batch-sizes", "1",
                 "--min-time", "0.02", "--max-time", "0.1", "--data", "--dataset",
                 "image-folder", "--data-dir", str(tmp_path / "imgs"), "--out",
                 str(tmp_path / "out")])
    assert code == 0
    data = json.loads((tmp_path / "out" / "result.json").read_text())
    (quality,) = data["quality"].values()
    assert quality["n"] == 6      # the seeded 20% test split of 30 images
    assert len(quality["per_class_accuracy"]) == 2
