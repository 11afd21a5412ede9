"""Command-line verbs for deployment and monitoring: `optbench package | serve | drift |
abtest`."""

from __future__ import annotations

import os
from pathlib import Path

from optbench.config import parse_ints
from optbench.errors import ConfigError


def add_parsers(sub) -> None:
    _package_parser(sub)
    _serve_parser(sub)
    _drift_parser(sub)
    _abtest_parser(sub)


def _drift_parser(sub) -> None:
    d = sub.add_parser("drift", help="test whether current inputs drifted from a reference",
                       description="KS + PSI per feature, chi-square on predicted classes, Holm "
                       "correction. REF: a drift_profile.json, an artifact folder holding one, "
                       "or a .npy array; CUR: a .npy array. Arrays are images (N,C,H,W or N,H,W)"
                       " or, with --tabular, rows of features (N,F).")
    d.add_argument("reference")
    d.add_argument("current")
    d.add_argument("--tabular", action="store_true", help="arrays are (N, F) feature rows")
    d.add_argument("--alpha", type=float, default=0.01, help="family-wise error rate")
    d.add_argument("--json", help="also write the report as JSON here")
    d.add_argument("--fail-on-drift", action="store_true", help="exit with status 1 on drift")
    d.set_defaults(func=_drift)


def _abtest_parser(sub) -> None:
    a = sub.add_parser("abtest", help="compare the two arms of an A/B route from its log",
                       description="Reads the JSON-lines log of `optbench serve --ab-log`: "
                       "two-proportion z-test on accuracy (needs labels in requests), "
                       "Mann-Whitney and a bootstrap CI on latency, and a verdict.")
    a.add_argument("log")
    a.add_argument("--metric", choices=("accuracy", "latency"), default="accuracy")
    a.add_argument("--alpha", type=float, default=0.05)
    a.add_argument("--planned-n", type=int, help="planned records per arm (warns on peeking)")
    a.add_argument("--baseline-rate", type=float, help="with --mde: compute the planned n")
    a.add_argument("--mde", type=float, help="minimum detectable absolute effect, e.g. 0.01")
    a.set_defaults(func=_abtest)


def _load_array(path: str):
    import numpy as np

    p = Path(path)
    if p.suffix not in (".npy", ".npz"):
        raise ConfigError(f"{path}: expected a .npy or .npz array (images N,C,H,W / N,H,W or "
                          "rows N,F)")
    if not p.is_file():
        from optbench.errors import MissingInputError

        raise MissingInputError(f"array not found: {path}")
    data = np.load(p, allow_pickle=False)  # never unpickle
    if p.suffix == ".npz":
        data = data[data.files[0]]
    return data


def _drift(args) -> int:
    import json

    from optbench.io import atomic_write_json
    from optbench.monitor import drift

    ref = Path(args.reference)
    if ref.is_dir() or ref.suffix == ".json":
        profile = (drift.load_profile(ref) if ref.is_dir() else
                   drift.Profile.from_dict(json.loads(ref.read_text())))
        if profile is None:
            raise ConfigError(f"{ref} holds no {drift.PROFILE_FILE}; create one with "
                              "optbench.monitor.drift.save_profile")
    else:
        ref_array = _load_array(args.reference)
        profile = (drift.build_profile(tabular=ref_array) if args.tabular
                   else drift.build_profile(inputs=ref_array))
    cur = _load_array(args.current)
    report = (drift.compare(profile, tabular=cur, alpha=args.alpha) if args.tabular
              else drift.compare(profile, inputs=cur, alpha=args.alpha))
    print(report.table())
    print(f"\n{report.verdict}")
    if args.json:
        atomic_write_json(args.json, report.to_dict())
    return 1 if report.drifted and args.fail_on_drift else 0


def _abtest(args) -> int:
    from optbench.monitor import abtest

    planned = args.planned_n
    if args.baseline_rate is not None or args.mde is not None:
        if args.baseline_rate is None or args.mde is None:
            raise ConfigError("--baseline-rate and --mde go together")
        planned = abtest.sample_size(args.baseline_rate, args.mde, alpha=args.alpha)
        print(f"planned sample: {planned} per arm (baseline {args.baseline_rate}, detectable "
              f"effect {args.mde}, alpha {args.alpha}, power 0.8)")
    report = abtest.analyze(abtest.load_records(args.log), alpha=args.alpha, planned_n=planned,
                            metric=args.metric)
    print(report.render())
    return 0


def _package_parser(sub) -> None:
    p = sub.add_parser("package", help="make a deployable artifact (model file + manifest with "
                       "checksums) from an .onnx file or a zoo model's state dict",
                       description="`optbench run` writes artifacts for its ONNX variants under "
                       "OUT/artifacts; this packages a model of your own.")
    p.add_argument("model", help="an .onnx file, or a state dict / optbench checkpoint (.pt, "
                   ".ckpt; loaded with weights_only=True) together with --arch")
    p.add_argument("--out", required=True, help="artifact folder to write")
    p.add_argument("--name", help="model name in the server (default: the file's stem)")
    p.add_argument("--arch", help="zoo name for a state dict (resnet18, mobilenet_v2, ...)")
    p.add_argument("--small-input", action="store_true", help="the zoo model uses the "
                   "small-input stem")
    p.add_argument("--input-shape", default="1,32,32", help="one item's shape, C,H,W")
    p.add_argument("--classes", default="fashion-mnist", help="'fashion-mnist' or "
                   "comma-separated class names")
    p.add_argument("--no-image-transform", action="store_true", help="the model takes tensors "
                   "only (no PNG/JPEG uploads)")
    p.add_argument("--version", default="1")
    p.set_defaults(func=_package)


def _serve_parser(sub) -> None:
    s = sub.add_parser("serve", help="serve artifacts over HTTP (FastAPI + uvicorn)",
                       description="Endpoints: POST /v1/models/{name}/predict, GET /v1/models, "
                       "/healthz, /readyz, /metrics, and /v1/ab/{route}/predict for --ab routes.")
    s.add_argument("manifests", nargs="+", help="artifact manifest.json files (or folders)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1, help="server processes")
    s.add_argument("--no-batching", action="store_true", help="one request = one forward "
                   "pass (the naive design; for comparison)")
    s.add_argument("--max-batch", type=int, default=32, help="items per forward pass, at most")
    s.add_argument("--max-wait-ms", type=float, default=2.0, help="how long a request waits "
                   "for others to batch with")
    s.add_argument("--max-items", type=int, default=64, help="items per request, at most")
    s.add_argument("--max-upload-bytes", type=int, default=4 << 20)
    s.add_argument("--timeout", type=float, default=10.0, help="request timeout in seconds")
    s.add_argument("--threads", type=int, default=0, help="runtime intra-op threads")
    s.add_argument("--ab", action="append", default=[], metavar="NAME=A:B[:WEIGHT_B]",
                   help="an A/B route splitting traffic between two loaded models")
    s.add_argument("--ab-log", default="", help="append A/B records to this JSON-lines file "
                   "(input of `optbench abtest`)")
    s.add_argument("--drift-window", type=int, default=0, help="live items per drift check "
                   "(needs a drift profile in each artifact)")
    s.add_argument("--access-log", action="store_true", help="log every request")
    s.set_defaults(func=_serve)


def _package(args) -> int:
    from optbench.artifact import save_artifact

    shape = parse_ints(args.input_shape, "--input-shape")
    if len(shape) != 3:
        raise ConfigError(f"--input-shape is one item's C,H,W, got {args.input_shape!r}")
    classes = _classes(args.classes)
    transform = None
    if not args.no_image_transform:
        from optbench.data import ImageTransform

        if shape[1] != shape[2]:
            raise ConfigError("image uploads are resized to a square; for a non-square input "
                              "pass --no-image-transform")
        transform = ImageTransform(size=shape[1], channels=shape[0])
    src = Path(args.model)
    kwargs = dict(name=args.name or src.stem, input_shape=shape, transform=transform,
                  class_names=classes, version=args.version)
    if src.suffix == ".onnx":
        path = save_artifact(args.out, onnx_path=src, **kwargs)
    else:
        if not args.arch:
            raise ConfigError(f"{src} is not an .onnx file; for a state dict give --arch "
                              "(a zoo name, e.g. mobilenet_v2)")
        from optbench.io import load_weights

        state = load_weights(src)
        arch = {"name": args.arch, "num_classes": len(classes), "in_channels": shape[0],
                "small_input": args.small_input}
        path = save_artifact(args.out, state_dict=state, architecture=arch, **kwargs)
        from optbench.artifact import load_artifact

        load_artifact(path)  # proves the weights fit the architecture before anyone serves it
    print(f"wrote {path}")
    return 0


def _classes(text: str) -> tuple[str, ...]:
    if text == "fashion-mnist":
        from optbench.data import FASHION_CLASSES

        return FASHION_CLASSES
    names = tuple(c.strip() for c in text.split(",") if c.strip())
    if len(names) < 2:
        raise ConfigError(f"--classes needs 'fashion-mnist' or at least two comma-separated "
                          f"names, got {text!r}")
    return names


def settings_from_args(args):
    from optbench.serve.settings import ABRoute, ServeSettings

    return ServeSettings(
        manifests=tuple(str(Path(m).resolve()) for m in args.manifests), host=args.host,
        port=args.port, workers=args.workers, batching=not args.no_batching,
        max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_items=args.max_items,
        max_upload_bytes=args.max_upload_bytes, request_timeout_s=args.timeout,
        threads=args.threads, ab_routes=tuple(ABRoute.parse(a) for a in args.ab),
        ab_log=args.ab_log, drift_window=args.drift_window)


def _serve(args) -> int:
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("serving needs the serve extra: pip install 'optbench[serve]'"
                          ) from None
    from optbench.serve.registry import check_manifests
    from optbench.serve.settings import ENV_VAR

    settings = settings_from_args(args)
    check_manifests(settings)  # a bad manifest or checksum fails here, with its reason
    os.environ[ENV_VAR] = settings.to_json()  # worker processes read their settings here
    uvicorn.run("optbench.serve.app:app_from_env", factory=True, host=settings.host,
                port=settings.port, workers=settings.workers, access_log=args.access_log,
                log_level="info")
    return 0
