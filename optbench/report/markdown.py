"""Markdown rendering of bench results: what a person reads first."""

from __future__ import annotations

from optbench.report.responsible import responsible_lines
from optbench.report.targets import target_lines


def render_bench(result: dict, title: str | None = None) -> str:
    env, cfg = result["env"], result["config"]
    lines = [f"# {title or 'optbench: ' + result['label']}", ""]
    threads = result["rows"][0]["measurement"]["spec"]["threads"] if result["rows"] else "?"
    lines += [f"Command: `{env.get('command', '?')}`", "",
              f"Input shape {tuple(cfg['input_shape'])}, device {cfg['device']}, "
              f"threads {threads}. "
              "Latencies are per call (one batch); speed-up is the first runtime's median divided "
              "by this one's, measured interleaved in the same run, with a 95% bootstrap CI.", ""]
    if "--quick" in env.get("command", ""):
        lines += ["**Quick run:** a small data subset and a few training steps check the pipeline "
                  "end to end; its accuracies are not meaningful.", ""]
    lines += ["## Latency, memory and speed-up", ""]
    lines += _latency_table(result["rows"]) + [""]
    if result.get("quality"):
        lines += ["## Accuracy and agreement", ""] + _quality_table(result["quality"]) + [""]
    lines += ["## Size", ""] + _size_table(result["sizes"]) + [""]
    lines += _training_lines(result.get("extra", {}))
    lines += _variant_lines(result.get("extra", {}))
    lines += responsible_lines(result)
    if result.get("skipped"):
        lines += ["Skipped runtimes:", ""]
        lines += [f"- {name}: {why}" for name, why in result["skipped"].items()] + [""]
    lines += _warning_lines(result["rows"])
    extra_warnings = result.get("extra", {}).get("warnings", [])
    if extra_warnings:
        lines += ["Model warnings:", ""] + [f"- {w}" for w in extra_warnings] + [""]
    lines += _env_lines(env)
    return "\n".join(lines) + "\n"


def _latency_table(rows: list[dict]) -> list[str]:
    out = ["| variant / runtime | batch | median ms | p90 ms | p99 ms | IQR ms | items/s "
           "| speed-up [95% CI] | memory MiB | load s |",
           "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        s, sp = r["measurement"]["stats"], r["speedup"]["speedup"]
        out.append(
            f"| {r['entry']} | {r['batch_size']} | {s['median_s'] * 1e3:.3f} | "
            f"{s['p90_s'] * 1e3:.3f} | {s['p99_s'] * 1e3:.3f} | {s['iqr_s'] * 1e3:.3f} | "
            f"{s['throughput_items_s']:.1f} | {sp['estimate']:.2f}x "
            f"[{sp['low']:.2f}, {sp['high']:.2f}] | {r['memory_bytes'] / 2**20:.1f} | "
            f"{r['load_s']:.1f} |")
    out += ["", "memory = resident memory added by loading the variant plus the peak added while "
            "running it (exact kernel high-water mark, VmHWM)."]
    return out


def _quality_table(quality: dict) -> list[str]:
    out = ["| variant / runtime | top-1 accuracy | n | top-1 agreement | max abs diff | vs |",
           "|---|---:|---:|---:|---:|---|"]
    for name, q in quality.items():
        a = q["agreement"]
        out.append(f"| {name} | {q['top1_accuracy']:.4f} | {q['n']} | "
                   f"{a['top1_agreement']:.4f} | {a['max_abs_diff']:.2e} | {q['agreement_with']} |")
    return out


def _size_table(sizes: dict) -> list[str]:
    out = ["| artifact | file MB | gzip MB | parameters | non-zero | dtypes |",
           "|---|---:|---:|---:|---:|---|"]
    for name, s in sizes.items():
        dtypes = ", ".join(f"{k}: {v / 1e6:.2f} MB" for k, v in s["dtype_bytes"].items())
        out.append(f"| {name} ({s['format']}) | {s['file_bytes'] / 1e6:.2f} | "
                   f"{s['gzip_bytes'] / 1e6:.2f} | {s['parameters']:,} | "
                   f"{s['nonzero_parameters']:,} | {dtypes} |")
    return out


def _references_table(comparisons: list[dict]) -> list[str]:
    out = ["| variant | vs | batch | speed-up | size ratio | top-1 Δ (points) |",
           "|---|---|---:|---:|---:|---:|"]
    for c in comparisons:
        size = f"{c['size_ratio']:.2f}x" if c["size_ratio"] else "—"
        acc = (f"{c['accuracy_delta_points']:+.2f}" if c["accuracy_delta_points"] is not None
               else "—")
        out.append(f"| {c['variant']} ({c['runtime']}) | {c['reference']} "
                   f"({c['reference_runtime']}) | {c['batch_size']} | {c['speedup']:.2f}x "
                   f"| {size} | {acc} |")
    return out


def _at_size_lines(size: str, at: dict) -> list[str]:
    out = [f"## Latency at {size}x{size}", "",
           f"The same networks timed on {size}x{size} inputs (interleaved, in one run). fp32 "
           "modules run as they are; post-training steps (PTQ, ONNX export) were re-applied to "
           f"their parent at {size}x{size}, calibrated on the same images resized. Accuracy "
           "belongs to the training scale and is not measured here.", ""]
    out += _latency_table(at["rows"]) + [""]
    if at.get("references"):
        out += _references_table(at["references"]) + [""]
    out += [f"- {name}: not timed at {size}x{size}: {why}" for name, why in
            at.get("skipped", {}).items()]
    return out + [""] + _warning_lines(at["rows"], f" at {size}x{size}")


def _warning_lines(rows: list[dict], where: str = "") -> list[str]:
    """Every row's measurement and speed-up warnings (few samples, high spread, wide CI)."""
    warnings = [f"{r['entry']} @ batch {r['batch_size']}: {w}" for r in rows
                for w in r["measurement"]["warnings"] + r["speedup"]["warnings"]]
    if not warnings:
        return []
    return [f"Measurement warnings{where}:", ""] + [f"- {w}" for w in warnings] + [""]


def _variant_lines(extra: dict) -> list[str]:
    out = target_lines(extra.get("targets", []))
    if extra.get("references"):
        out += ["## Against the references", "",
                "Each variant's fastest runtime against each reference's fastest, same batch "
                "size. Size ratio = reference bytes / variant bytes; accuracy in points.", ""]
        out += _references_table(extra["references"]) + [""]
    for size, at in extra.get("at_sizes", {}).items():
        out += _at_size_lines(size, at)
    if extra.get("variants"):
        out += ["## Variants", "", "| variant | lineage | runtimes | notes |", "|---|---|---|---|"]
        for name, v in extra["variants"].items():
            info = v["info"]
            notes = "; ".join([*info.get("warnings", []),
                               *([info["note"]] if "note" in info else []), *int8_notes(info)])
            out.append(f"| {name} | {' → '.join(v['lineage'])} | {', '.join(v['runtimes'])} "
                       f"| {notes} |")
        out.append("")
    if "diagnosis" in extra:
        out += ["## Diagnosis: variants not faster than their parent", ""]
        if not extra["diagnosis"]:
            out.append("Every variant was at least 5% faster than its parent.")
        for d in extra["diagnosis"]:
            out.append(f"- **{d['variant']} / {d['runtime']} @ batch {d['batch_size']}**: "
                       f"{d['speedup']:.2f}x vs {d['parent']} / {d['parent_runtime']}. "
                       + " ".join(d["reasons"]))
        out.append("")
    return out


def int8_notes(info: dict) -> list[str]:
    """An int8 variant's number format (and why) and its accuracy guard's figures."""
    out = []
    if info.get("int8_mode"):
        out.append(f"int8 format {info['int8_mode']['mode']} ({info['int8_mode']['reason']})")
    guard = info.get("int8_guard") or {}
    if "top1_agreement" in guard:
        out.append(f"guard: {guard['top1_agreement']:.1%} top-1 agreement with the parent on "
                   f"{guard['examples']} calibration examples ({guard['runtime']})")
    return out


def _training_lines(extra: dict) -> list[str]:
    if "train_history" not in extra:
        return []
    epochs = "; ".join(f"epoch {h['epoch']}: loss {h['train_loss']:.3f}"
                       for h in extra["train_history"])
    return ["## Training", "",
            f"Trained on {extra.get('train_examples', '?')} real Fashion-MNIST training images, "
            f"tested on {extra.get('test_examples', '?')} test images. {epochs}.", ""]


def _env_lines(env: dict) -> list[str]:
    isa = ", ".join(k for k, v in env.get("isa", {}).items() if v) or "none detected"
    pk = env.get("packages", {})
    versions = ", ".join(f"{k} {v}" for k, v in pk.items() if v)
    features = env.get("cpu_features") or {}
    int8 = (f"; int8 class: {features['kind']} (VNNI: {'yes' if features['vnni'] else 'no'})"
            if features else "")
    return ["## Environment", "",
            f"- CPU: {env.get('cpu_model')} ({env.get('logical_cpus')} logical CPUs); ISA: {isa}"
            + int8,
            f"- torch threads: {env.get('torch_threads')}; allocator: {env.get('allocator')}",
            f"- Python {env.get('python')}; {versions}",
            f"- CUDA: {env.get('cuda') or 'none'}",
            f"- git commit: {env.get('git_commit')}"
            + (" (uncommitted changes)" if env.get("git_dirty") else "")
            + f"; date: {env.get('date')}"]


def render_search(summary: dict) -> str:
    """search.json -> Markdown: every candidate's figures and the pick per batch size."""
    lines = ["# Search under an accuracy budget", ""]
    for name, res in summary.items():
        lines += [f"## {name}", "",
                  f"fp32 top-1 on the validation split: {res['baseline_accuracy']:.4f}; budget: "
                  f"at most {res['budget_points']} points lower.", "",
                  "| candidate / runtime | batch | median ms | speed-up vs fp32 eager | top-1 "
                  "| drop (points) | within budget |", "|---|---:|---:|---:|---:|---:|---|"]
        for c in res["candidates"]:
            lines.append(f"| {c['entry']} | {c['batch_size']} | {c['median_s'] * 1e3:.3f} | "
                         f"{c['speedup_vs_fp32_eager']:.2f}x | {c['top1_accuracy']:.4f} | "
                         f"{c['drop_points']:+.2f} | {'yes' if c['within_budget'] else 'no'} |")
        lines.append("")
        for batch, best in res["best"].items():
            pick = (f"**{best['entry']}** ({best['median_s'] * 1e3:.3f} ms, "
                    f"{best['speedup_vs_fp32_eager']:.2f}x)" if best else "none within budget")
            lines.append(f"- batch {batch}: {pick}")
        lines.append("")
    return "\n".join(lines) + "\n"
