"""Where does the server's tail come from? Each configuration of `optbench serve` gets the same
MLPerf LoadGen Server-scenario load (Poisson arrivals at a fixed rate), and the server's own
probes say what stopped it: the event loop's lag (how late a 5 ms timer fired) and garbage
collector pauses per generation, read from /metrics before and after the run.

    python benchmarks/serving_stalls.py ARTIFACT/manifest.json --qps 300 \
        --config "default=" --config "gc-freeze=--gc freeze" --out results/serving/stalls
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from live_server import serve  # noqa: E402
from serving_loadgen import server_pids  # noqa: E402


def histograms(url: str) -> dict[str, dict[str, float]]:
    """{series{labels}: {le: cumulative count, "count", "sum"}} of the stall histograms."""
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        m = re.match(r"(optbench_(?:event_loop_lag|gc_pause)_seconds)_(bucket|count|sum)"
                     r"(\{[^}]*\})? (\S+)", line)
        if not m:
            continue
        name, kind, labels, value = m.groups()
        labels = labels or ""
        le = re.search(r'le="([^"]+)"', labels)
        series = name + re.sub(r',?le="[^"]+"', "", labels).replace("{}", "")
        out.setdefault(series, {})[le[1] if le else kind] = float(value)
    return out


def delta(after: dict, before: dict) -> dict:
    return {s: {k: v - before.get(s, {}).get(k, 0.0) for k, v in h.items()}
            for s, h in after.items()}


def summarize(h: dict) -> dict:
    """Count, total seconds, and how many exceeded 10 and 50 ms (from the cumulative buckets)."""
    count = h.get("count", 0.0)
    return {"count": int(count), "sum_s": h.get("sum", 0.0),
            "over_10ms": int(count - h.get("0.01", count)),
            "over_50ms": int(count - h.get("0.05", count)),
            "max_bucket_ms": max((float(le) * 1e3 for le, c in h.items()
                                  if le not in ("count", "sum", "+Inf") and c < count),
                                 default=0.0)}


def one(manifest: Path, label: str, flags: list[str], args) -> dict:
    from optbench.loadtest import LoadSpec, build_requests, run_scenario

    name = json.loads(manifest.read_text())["name"]
    with serve([manifest], "--threads", str(args.threads), *flags) as url:
        pids = server_pids(int(url.rsplit(":", 1)[1]))
        spec = LoadSpec(url, name, path=args.path, connections=args.connections,
                        duration_s=args.duration_s, min_queries=args.min_queries)
        requests = build_requests(spec)
        run_scenario(LoadSpec(url, name, path=args.path, connections=args.connections,
                              duration_s=2.0, min_queries=200), "server",
                     target_qps=args.qps, bound_ms=args.bound_ms, requests=requests)
        before = histograms(url)
        run = run_scenario(spec, "server", target_qps=args.qps, bound_ms=args.bound_ms,
                           requests=requests, server_pids=pids)
        probes = {s: summarize(h) for s, h in delta(histograms(url), before).items()}
    row = {"config": label, "flags": flags, **{k: run.get(k) for k in (
        "completed_qps", "p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms", "result",
        "request_errors", "server_cores", "generator_cores")}, "probes": probes}
    print(json.dumps(row), flush=True)
    return row


def render(rows: list[dict], meta: dict) -> str:
    lines = [f"# Where the tail comes from: {meta['artifact']}", "",
             f"Command: `{meta['command']}` at commit {meta['commit']}.", "",
             f"Machine: {meta['cpu']} ({_isa(meta.get('isa'))}), {meta['cpus']} logical CPUs "
             "shared by server and load generator. Load: MLPerf LoadGen Server scenario, "
             "Poisson arrivals at "
             f"{meta['qps']:g} queries/s, {meta['path']}, at least {meta['min_queries']} "
             "queries per row.", "",
             "| config | flags | q/s | p50 ms | p99 ms | p99.9 ms | max ms | loop lags > 10 ms "
             "(> 50 ms) | GC gen-2 pauses (> 10 ms) | GC time s | server cores |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lag = r["probes"].get("optbench_event_loop_lag_seconds", {})
        gen2 = r["probes"].get('optbench_gc_pause_seconds{generation="2"}', {})
        gc_s = sum(p["sum_s"] for s, p in r["probes"].items() if "gc_pause" in s)
        lines.append(
            f"| {r['config']} | `{' '.join(r['flags']) or '(defaults)'}` | "
            f"{r['completed_qps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['p99.9_ms']:.2f} | {r['max_ms']:.1f} | {lag.get('over_10ms', 0)} "
            f"({lag.get('over_50ms', 0)}) | {gen2.get('count', 0)} ({gen2.get('over_10ms', 0)})"
            f" | {gc_s:.3f} | {r['server_cores'] or 0:.2f} |")
    return "\n".join(lines) + "\n"


def _isa(isa) -> str:
    flags = [k for k, v in (isa or {}).items() if v]
    return "ISA: " + (", ".join(flags) if flags else "unknown")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("manifest")
    p.add_argument("--config", action="append", default=[], metavar="LABEL=FLAGS",
                   help="a server configuration: a label and `optbench serve` flags")
    p.add_argument("--qps", type=float, required=True)
    p.add_argument("--path", default="v2-binary")
    p.add_argument("--bound-ms", type=float, default=15.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--duration-s", type=float, default=20.0)
    p.add_argument("--min-queries", type=int, default=10_000)
    p.add_argument("--out", default="results/serving/stalls")
    args = p.parse_args(argv)
    configs = [c.partition("=") for c in (args.config or ["default="])]
    manifest = Path(args.manifest)
    rows = [one(manifest, label, shlex.split(flags), args) for label, _, flags in configs]
    from optbench import env
    from optbench.io import atomic_write_json, atomic_write_text

    e = env.capture()
    meta = {"artifact": str(manifest), "command": " ".join(sys.orig_argv),
            "commit": (e.get("git_commit") or "?")[:12], "cpu": e.get("cpu_model"),
            "cpus": e.get("logical_cpus"), "qps": args.qps, "path": args.path,
            "min_queries": args.min_queries, "isa": e.get("isa")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "stalls.json", {"meta": meta, "rows": rows})
    atomic_write_text(out / "stalls.md", render(rows, meta))
    print((out / "stalls.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
