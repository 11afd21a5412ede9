"""Peers side by side: read a peers recipe's report (recipes/peers_*.toml) and write
DIR/peers.md and DIR/peers.json: every path's latency and accuracy, the best peer path, the
search's pick among optbench's candidates (before and after OpenVINO joined), and whether the
pick is at least as fast as the best peer (speed-up CI lower bound >= 0.95x).

Every figure comes from the one interleaved run in DIR/report.json; nothing is re-measured.

    python scripts/peers.py results/peers/resnet50                # random weights: no budget
    python scripts/peers.py results/peers/student --budget 0.5    # top-1 points vs fp32
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optbench.io import atomic_write_text  # noqa: E402
from optbench.measure.compare import ratio_between  # noqa: E402
from optbench.report.document import Document, Para, Section, Table, to_markdown  # noqa: E402
from optbench.report.store import load_predictions  # noqa: E402
from optbench.results import load_report  # noqa: E402
from optbench.search import pick  # noqa: E402

PEERS = {  # step name -> the peer's documented default path
    "peer-nncf": "OpenVINO + NNCF: nncf.quantize defaults",
    "peer-ort-olive": "ONNX Runtime static QDQ as Olive configures it by default",
    "peer-pt2e": "PT2E + Inductor as torchao / Intel Neural Compressor document it",
}
# optbench's search candidates measured in the run: its own steps plus the two peer steps that
# are identical to search.DEFAULT_CANDIDATES entries ({"method": "ptq-nncf"}, {"method":
# "ptq-pt2e"})
CANDIDATE_PEERS = ("peer-nncf", "peer-pt2e")
TARGET = 0.95


def role(variant: str, fp32: set[str]) -> str:
    if variant in PEERS:
        return "peer"
    if variant in fp32:
        return "fp32"
    return "optbench"


def summarize(folder: Path, budget: float | None) -> dict:
    result = load_report(folder / "report.json")
    rows = result.rows
    model = rows[0].variant                  # the first measured variant: the fp32 model
    fp32 = {model, "onnx-fp32"}
    base_acc = result.quality[f"{model} / torch-eager"].top1_accuracy
    table, out = [], {"model": model, "budget_points": budget, "batches": {}}
    measured = {(r.entry, r.batch_size): r.measurement for r in rows}
    npz = folder / "predictions.npz"        # paired accuracy tests for the pick's tie-break
    predictions = load_predictions(npz) if npz.is_file() else None
    for batch in sorted({r.batch_size for r in rows}):
        here = [r for r in rows if r.batch_size == batch]
        cands = []
        for r in here:
            q = result.quality.get(r.entry)
            acc = q.top1_accuracy if q else None
            drop = (base_acc - acc) * 100 if acc is not None else None
            entry = {"entry": r.entry, "variant": r.variant, "runtime": r.runtime,
                     "batch_size": batch, "role": role(r.variant, fp32),
                     "median_s": r.median_s, "speedup_vs_fp32_eager": r.speedup.speedup.estimate,
                     "ci": [r.speedup.speedup.low, r.speedup.speedup.high],
                     "processes": r.measurement.processes, "top1_accuracy": acc,
                     "drop_points": drop,
                     "mcnemar_p": (q.paired or {}).get("p_value") if q else None,
                     "within_budget": budget is None or (drop is not None and drop <= budget)}
            cands.append(entry)
        searchable = [c for c in cands if c["role"] == "optbench"
                      or c["variant"] in CANDIDATE_PEERS]
        after = pick(searchable, measured, predictions)
        before = pick([c for c in searchable if c["runtime"] != "openvino"], measured,
                      predictions)
        peers = [c for c in cands if c["role"] in ("peer", "fp32")]
        best_peer = min(peers, key=lambda c: c["median_s"])
        verdict = None
        if after:
            pair = {"pick": measured[(after["entry"], batch)],
                    "peer": measured[(best_peer["entry"], batch)]}
            ci = ratio_between("pick", "peer", pair).speedup
            verdict = {"speedup": ci.estimate, "low": ci.low, "high": ci.high,
                       "verdict": ("met" if ci.low >= TARGET else
                                   "missed" if ci.high < TARGET else "undecided")}
        out["batches"][batch] = {"candidates": cands, "pick": after,
                                 "pick_before_openvino": before, "best_peer": best_peer,
                                 "pick_vs_best_peer": verdict}
        table += [[str(batch), c["entry"], c["role"] if c["role"] != "peer"
                   else PEERS[c["variant"]], f"{c['median_s'] * 1e3:.2f}",
                   f"{c['speedup_vs_fp32_eager']:.2f}x [{c['ci'][0]:.2f}, {c['ci'][1]:.2f}]",
                   "—" if c["top1_accuracy"] is None else f"{c['top1_accuracy']:.4f}",
                   "—" if c["mcnemar_p"] is None else f"{c['mcnemar_p']:.3g}"]
                  for c in sorted(cands, key=lambda c: c["median_s"])]
    out["env"] = {k: result.env.get(k) for k in ("cpu_model", "cpu_features", "allocator",
                                                  "git_commit", "git_dirty", "command")}
    out["table"] = table
    return out


def render(summary: dict) -> str:
    env = summary["env"]
    features = env.get("cpu_features") or {}
    flags = ", ".join(k for k, v in features.items() if v is True) or "unknown"
    budget = summary["budget_points"]
    blocks = [Para(f"Model: {summary['model']}. Machine: {env.get('cpu_model')} (int8 class "
                   f"{features.get('kind', '?')}; flags: {flags}); allocator "
                   f"{env.get('allocator')}; commit {env.get('git_commit')}"
                   f"{' (dirty tree)' if env.get('git_dirty') else ''}. Every figure is from "
                   "the one interleaved run in report.json."),
              Para("Accuracy budget: " + (f"at most {budget} top-1 points below fp32 on the "
                                          "test split." if budget is not None else
                                          "none (random weights: accuracy means nothing).")),
              Table(["batch", "path (variant / runtime)", "whose path", "median ms",
                     "speed-up vs fp32 eager [95% CI]", "top-1", "McNemar p vs parent"],
                    summary["table"], align="llllrrr")]
    lines = []
    for batch, b in summary["batches"].items():
        pick_, before, peer, v = (b["pick"], b["pick_before_openvino"], b["best_peer"],
                                  b["pick_vs_best_peer"])
        lines.append(
            f"batch {batch}: best peer path {peer['entry']} ({peer['median_s'] * 1e3:.2f} ms); "
            f"search pick {pick_['entry'] if pick_ else 'none'}"
            + (f" ({pick_['median_s'] * 1e3:.2f} ms), {v['speedup']:.2f}x the best peer "
               f"[{v['low']:.2f}, {v['high']:.2f}]: target >= {TARGET}x {v['verdict']}"
               if pick_ else "")
            + f"; before OpenVINO joined the pick was {before['entry'] if before else 'none'}"
            + (f" ({before['median_s'] * 1e3:.2f} ms)." if before else "."))
    blocks.append(Section("The search's pick against the best peer", [Para(x) for x in lines],
                          open=True))
    command = env.get("command") or ""
    blocks.append(Para(f"Measured by: {command}. Summarized by: python scripts/peers.py"
                       + (f" --budget {budget}" if budget is not None else "")))
    return to_markdown(Document("Peers side by side", blocks))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--budget", type=float, default=None,
                        help="allowed top-1 drop in points (trained models); omit for random "
                             "weights")
    args = parser.parse_args(argv)
    if not (args.folder / "report.json").is_file():
        parser.error(f"{args.folder}/report.json not found: run a recipes/peers_*.toml first")
    summary = summarize(args.folder, args.budget)
    atomic_write_text(args.folder / "peers.json", json.dumps(summary, indent=1, default=str))
    atomic_write_text(args.folder / "peers.md", render(summary))
    print(render(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
