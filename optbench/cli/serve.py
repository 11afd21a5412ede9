"""`optbench package` (a deployable artifact from a model of your own) and `optbench serve`."""

from __future__ import annotations

import os
from pathlib import Path

from optbench.config import parse_ints
from optbench.errors import ConfigError


def add_parsers(sub) -> None:
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
    p.set_defaults(func=package)

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
    s.add_argument("--gc", default="freeze", help="freeze (the default: collect once after "
                   "loading, freeze the survivors, rarer young collections; a full collection "
                   "otherwise stops the server ~120 ms) or python (CPython's collector as is)")
    s.add_argument("--loop", default="auto", help="event loop: auto (uvloop when installed) "
                   "or asyncio")
    s.add_argument("--http", default="auto", help="HTTP parser: auto (httptools when "
                   "installed) or h11")
    s.set_defaults(func=serve)

    t = sub.add_parser("loadtest", help="load a running server with MLPerf LoadGen "
                       "(SingleStream, Server with Poisson arrivals, Offline)",
                       description="Latencies count from when LoadGen scheduled each query, "
                       "so a slow server cannot hide its tail (unlike closed-loop `hey -c`). "
                       "Server scenario: with --qps, one run at that rate; without, the "
                       "highest rate whose p99 stays under each --bound-ms.")
    t.add_argument("url", help="the server, e.g. http://127.0.0.1:8000")
    t.add_argument("--model", required=True, help="served model name")
    t.add_argument("--path", default="v2-binary", help="request body: v2-binary (KServe v2 "
                   "binary tensors), v2-json, v1-png or v1-json")
    t.add_argument("--scenario", default="server", help="single, server or offline")
    t.add_argument("--qps", type=float, default=0.0, help="Server-scenario rate (0: search)")
    t.add_argument("--bound-ms", type=float, action="append", default=[],
                   help="p99 bound for the Server scenario (repeatable; default 15)")
    t.add_argument("--duration-s", type=float, default=10.0, help="minimum seconds per run")
    t.add_argument("--min-queries", type=int, default=10_000, help="minimum queries per run")
    t.add_argument("--connections", type=int, default=64, help="sender threads")
    t.add_argument("--server-pid", type=int, action="append", default=[],
                   help="measure this server process's CPU (and its children's)")
    t.add_argument("--out", default="", help="write the result as JSON here")
    t.set_defaults(func=loadtest)


def package(args) -> int:
    from optbench.artifact import package_model

    path = package_model(args.model, args.out,
                         input_shape=parse_ints(args.input_shape, "--input-shape"),
                         class_names=class_names(args.classes), name=args.name,
                         arch=args.arch, small_input=args.small_input,
                         image_transform=not args.no_image_transform, version=args.version)
    print(f"wrote {path}")
    return 0


def class_names(text: str) -> tuple[str, ...]:
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
        ab_log=args.ab_log, drift_window=args.drift_window, gc=args.gc, loop=args.loop,
        http=args.http)


def serve(args) -> int:
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
                log_level="info", loop=settings.loop, http=settings.http)
    return 0


def loadtest(args) -> int:
    import json

    from optbench.io import atomic_write_json
    from optbench.loadtest import LoadSpec, find_peak_rate, run_scenario

    spec = LoadSpec(url=args.url.rstrip("/"), model=args.model, path=args.path,
                    connections=args.connections, duration_s=args.duration_s,
                    min_queries=args.min_queries)
    pids = tuple(args.server_pid)
    bounds = args.bound_ms or [15.0]
    if args.scenario == "server" and not args.qps:
        result = {"searches": [find_peak_rate(spec, b, server_pids=pids) for b in bounds]}
        for search in result["searches"]:
            peak = search["peak"]
            print(f"p99 <= {search['bound_ms']:g} ms: " + (
                f"{peak['target_qps']:.0f} queries/s (p50 {peak['p50_ms']:.2f} ms, p99 "
                f"{peak['p99_ms']:.2f} ms)" if peak else "no tried rate met the bound"))
    else:
        result = run_scenario(spec, args.scenario, target_qps=args.qps, bound_ms=bounds[0],
                              server_pids=pids)
        print(json.dumps({k: v for k, v in result.items()}, indent=1))
    if args.out:
        atomic_write_json(args.out, {"spec": spec.to_dict(), **result})
    return 0
