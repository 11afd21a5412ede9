"""Load benchmark of `optbench serve`: the real server on loopback, driven by `hey`.

For each design (naive: one request = one forward pass; batched: dynamic batching) and each
concurrency level, it starts a fresh server, warms it, sends a bounded number of PNG uploads with
hey, and records throughput, p50/p99 latency, errors, the batch size the server formed (from
/metrics) and the CPU seconds taken by the server and by hey. It then times the raw runtime on the
same artifact at the batch size the server formed, so served/raw throughput is a same-machine
ratio.

    python benchmarks/serving_load.py ARTIFACT/manifest.json --out results/serving
    python benchmarks/serving_load.py --demo-artifact runs/serve-demo --requests 2000
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from live_server import serve  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pid(port: int) -> int:
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True)
    text = out.stdout
    return int(text.split("pid=")[1].split(",")[0])


def metric_sum(url: str, name: str) -> float:
    import urllib.request

    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def run_hey(url: str, body: Path, requests: int, clients: int, timeout_s: int) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(["hey", "-n", str(requests), "-c", str(clients), "-m", "POST",
                          "-T", "image/png", "-D", str(body), "-t", "30", "-o", "csv", url],
                         capture_output=True, text=True, timeout=timeout_s)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    if not rows:
        raise RuntimeError(f"hey produced no rows: {out.stderr[-500:]}")
    lat = np.array([float(r["response-time"]) for r in rows])
    status = [r["status-code"] for r in rows]
    span = max(float(r["offset"]) + float(r["response-time"]) for r in rows)
    return {"requests": len(rows), "errors": sum(s != "200" for s in status),
            "throughput_rps": len(rows) / span, "p50_ms": float(np.percentile(lat, 50)) * 1e3,
            "p99_ms": float(np.percentile(lat, 99)) * 1e3, "wall_s": wall,
            "hey_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)}


def one_design(manifest: Path, body: Path, design: str, clients: int, requests: int,
               threads: int) -> dict:
    args = ["--threads", str(threads), "--max-batch", "32", "--max-wait-ms", "2"]
    if design == "naive":
        args.append("--no-batching")
    with serve([manifest], *args) as url:
        port = int(url.rsplit(":", 1)[1])
        pid = server_pid(port)
        name = json.loads(manifest.read_text())["name"]
        predict = f"{url}/v1/models/{name}/predict"
        run_hey(predict, body, max(200, clients * 10), clients, 300)  # warm-up, not recorded
        n0 = metric_sum(url, "optbench_batch_size_count")
        s0 = metric_sum(url, "optbench_batch_size_sum")
        cpu0 = cpu_seconds(pid)
        res = run_hey(predict, body, requests, clients, 900)
        res["server_cpu_s"] = cpu_seconds(pid) - cpu0
        batches = metric_sum(url, "optbench_batch_size_count") - n0
        res["mean_batch"] = (metric_sum(url, "optbench_batch_size_sum") - s0) / max(batches, 1)
    return {"design": design, "clients": clients, **res}


def raw_throughput(manifest: Path, batch: int, threads: int) -> float:
    """Items/s of the artifact's runtime alone at `batch`, on the same input the server sees."""
    import torch

    from optbench.artifact import load_artifact
    from optbench.measure.timer import TimerConfig, time_callable

    art = load_artifact(manifest, threads=threads)
    x = torch.randn(batch, *art.manifest.input_shape)
    prepared = art.session.prepare(x)
    m = time_callable(lambda: art.session.run(prepared), TimerConfig(min_time_s=2.0,
                                                                     max_time_s=8.0))
    return batch / m.median_s


def demo_artifact(folder: Path) -> Path:
    """An int8 MobileNetV2 (ONNX Runtime static, calibrated on real Fashion-MNIST) with random
    weights: latency is what it would be trained; predictions are meaningless."""
    from optbench.artifact import save_artifact
    from optbench.data import FASHION_CLASSES, ImageTransform, load_fashion_mnist
    from optbench.models import build_model
    from optbench.transforms import Context, optimize
    from optbench.transforms.quantize_ort import OrtStaticQuantConfig

    tf = ImageTransform(size=32, channels=1)
    calib = load_fashion_mnist("train", transform=tf, limit=256)
    ctx = Context(example_input=calib.batch(0, 2), calib_data=calib, workdir=folder / "work",
                  progress=False)
    variant = optimize(build_model("mobilenet_v2", 10, 1).eval(), OrtStaticQuantConfig(), ctx)
    return save_artifact(folder / "mnv2-int8", name="mnv2-int8", onnx_path=variant.onnx_path,
                         input_shape=(1, 32, 32), transform=tf, class_names=FASHION_CLASSES)


def png_of_test_image(path: Path) -> Path:
    from PIL import Image

    from optbench.data import load_fashion_mnist

    image = load_fashion_mnist("test", limit=1).images[0].numpy()
    Image.fromarray(image, mode="L").save(path, format="PNG")
    return path


def render(rows: list[dict], raw: dict[int, float], meta: dict) -> str:
    lines = [f"# Serving load benchmark: {meta['artifact']}", "",
             f"Command: `{meta['command']}`", "",
             f"Machine: {meta['cpu']}, {os.cpu_count()} logical CPUs shared by the server and "
             f"hey; runtime threads {meta['threads']}; {meta['requests']} requests per row "
             "(after a warm-up), PNG upload of one Fashion-MNIST test image.", "",
             "| design | clients | requests | errors | req/s | p50 ms | p99 ms | mean batch "
             "| server CPU s | hey CPU s | served / raw runtime |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        b = max(1, round(r["mean_batch"]))
        ratio = r["throughput_rps"] / raw[b] if b in raw else float("nan")
        lines.append(f"| {r['design']} | {r['clients']} | {r['requests']} | {r['errors']} | "
                     f"{r['throughput_rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r['mean_batch']:.2f} | {r['server_cpu_s']:.1f} | {r['hey_cpu_s']:.1f} | "
                     f"{ratio:.2f} (raw {raw.get(b, float('nan')):.0f}/s at batch {b}) |")
    lines += ["", "served / raw runtime = served requests/s divided by the runtime's own "
              "items/s at the batch size the server formed (rounded), timed in the same process "
              "run with the same thread count. The load generator takes CPU from the same cores "
              "(hey CPU s)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("manifest", nargs="?", help="artifact manifest.json to serve")
    p.add_argument("--demo-artifact", help="build a random-weight int8 MobileNetV2 artifact "
                   "in this folder and serve it")
    p.add_argument("--out", default="results/serving")
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--clients", default="1,8,32")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if shutil.which("hey") is None:
        print("hey is not installed: sudo apt-get install -y hey", file=sys.stderr)
        return 2
    if not args.manifest and not args.demo_artifact:
        p.error("give a manifest or --demo-artifact DIR")
    manifest = Path(args.manifest) if args.manifest else demo_artifact(Path(args.demo_artifact))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    body = png_of_test_image(out / "request.png")
    rows = []
    for clients in [int(c) for c in args.clients.split(",")]:
        for design in ("naive", "batched"):
            rows.append(one_design(manifest, body, design, clients, args.requests,
                                   args.threads))
            print(json.dumps(rows[-1]), flush=True)
    batches = sorted({max(1, round(r["mean_batch"])) for r in rows})
    raw = {b: raw_throughput(manifest, b, args.threads) for b in batches}
    from optbench import env
    from optbench.io import atomic_write_json, atomic_write_text

    meta = {"artifact": str(manifest), "command": " ".join(sys.orig_argv),
            "cpu": env.capture()["cpu_model"], "threads": args.threads,
            "requests": args.requests}
    atomic_write_json(out / "load.json", {"meta": meta, "rows": rows,
                                          "raw_items_per_s": raw})
    atomic_write_text(out / "load.md", render(rows, raw, meta))
    print((out / "load.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
