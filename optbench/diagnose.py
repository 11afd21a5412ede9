"""Diagnosis: when a variant is not faster than its parent, say why, if the cause is known.

Pure functions over a BenchResult and the variants' facts (what each method recorded).
"""

from __future__ import annotations

from optbench.results import (
    BenchResult,
    Row,
    VariantFacts,
    fastest_rows,
    lineage_seed,
    seed_groups,
    split_seed,
)

NOT_FASTER = 1.05   # a variant must beat its parent's median by 5% to count as faster
MULTIPLE = 8        # channel counts that SIMD kernels like


def diagnose(result: BenchResult, variants: dict) -> list[dict]:
    """One entry per (variant, runtime, batch) not faster than its parent on the same runtime
    (or, when the parent never ran there, than the parent's fastest runtime). `variants`: name
    -> transforms.Variant (or anything with .lineage and .facts)."""
    rows, env = result.rows, result.env
    findings = []
    for row in rows:
        variant = variants.get(row.variant)
        parent = _parent(variant, variants)
        if parent is None:
            continue
        parent_rows = [r for r in rows if r.variant == parent and r.batch_size == row.batch_size]
        if not parent_rows:
            continue
        same = [r for r in parent_rows if r.runtime == row.runtime]
        best = same[0] if same else min(parent_rows, key=lambda r: r.median_s)
        speedup = best.median_s / row.median_s
        if speedup >= NOT_FASTER:
            continue
        reasons = causes(variant.facts, row, best, env)
        findings.append({"variant": row.variant, "runtime": row.runtime,
                         "batch_size": row.batch_size, "parent": parent,
                         "parent_runtime": best.runtime, "speedup": speedup,
                         "reasons": reasons or ["no known cause found; inspect the variant's "
                                                "profile (torch.profiler / ORT profiling)"]})
    return findings


def causes(facts: VariantFacts, row: Row, parent_row: Row, env: dict) -> list[str]:
    """The known reasons a variant with these facts can fail to be faster."""
    out = []
    ops = facts.ops
    if facts.unstructured_sparsity:
        out.append("unstructured sparsity: dense kernels still multiply the zeros; it only "
                   "shrinks the gzip size. Use structured (channel) pruning for speed.")
    if facts.dynamic and ops.get("conv", 0):
        out.append(f"dynamic int8 on a conv net ({ops['conv']} convs): activations are "
                   "quantized at run time, measured 3-5x slower than fp32 here; use static int8")
    left = ops.get("fp32_conv", 0) or ops.get("fp32_compute_ops", 0)
    total = ops.get("conv", 0) or ops.get("compute_ops", 0)
    if facts.int8 and left:
        out.append(f"{left} of {total} convolutions were left in fp32 by the quantizer"
                   + ("; ORT's signed int8 activations cause this on x86: use uint8"
                      if facts.activation_type == "int8" else ""))
    elif facts.int8 and facts.activation_type == "int8":
        # The graph has QDQ around every conv, so the count above sees nothing; the cost
        # shows at run time (results/peers_amx: a ResNet50 file with signed activations no
        # faster than fp32 on ONNX Runtime or OpenVINO, where optbench's uint8 per-channel
        # file ran 2.8x and 7.8x faster than it)
        out.append("signed int8 activations (activation_type = 'int8'): every convolution "
                   "is quantized in the graph, but on x86 ONNX Runtime and OpenVINO ran such "
                   "files no faster than fp32 (VNNI multiplies unsigned by signed bytes); "
                   "quantize with activation_type = 'uint8', optbench's default")
    if facts.int8 and ops.get("fake_quant_ops", 0):
        out.append(f"{ops['fake_quant_ops']} fake-quant ops remain in the graph: the QAT model "
                   "was not converted to int8")
    isa = env.get("isa", {})
    features = env.get("cpu_features") or {}
    no_vnni = (not features["vnni"]) if features else (
        isa and not (isa.get("avx512_vnni") or isa.get("amx_int8") or isa.get("avx_vnni")))
    if facts.int8 and no_vnni:
        kind = features.get("kind", "this")
        mode = (facts.int8_mode or {}).get("mode")
        out.append(f"this {kind} CPU lacks VNNI and AMX int8 instructions: its int8 kernels "
                   "add pairs of products in saturating 16 bits (vpmaddubsw), so int8 gains "
                   "little here" + (f" (this variant used int8 format {mode} to stay exact)"
                                    if mode else ""))
    if facts.dtype == "bfloat16" and isa and not (isa.get("avx512_bf16")
                                                        or isa.get("amx_bf16")):
        # torch.compile does not rescue it: on an AVX2-only EPYC bf16 under compile ran at
        # 0.06x of fp32 under compile (results/peers_avx2), so no advice to compile it
        out.append("this CPU lacks AVX512-BF16/AMX: bf16 is emulated and slow on every "
                   "runtime; keep fp32 (or int8) on this CPU")
    elif facts.dtype and row.runtime == "torch-eager":
        out.append(f"{facts.dtype} autocast in eager mode pays a cast around every op; run "
                   "it through torch-compile, which fuses the casts")
    odd = {k: v for k, v in facts.channels.items() if v % MULTIPLE}
    if odd:
        out.append(f"{len(odd)} conv layers have channel counts that are not multiples of "
                   f"{MULTIPLE} (e.g. {dict(list(odd.items())[:3])}); prune with round_to=8 or 16")
    threads = (row.measurement.spec.threads, parent_row.measurement.spec.threads)
    if threads[0] != threads[1]:
        out.append(f"thread count changed: {threads[1]} for the parent, {threads[0]} here")
    if (env.get("allocator") == "glibc" and row.runtime.startswith("torch")
            and row.batch_size > 1):
        out.append("glibc malloc: batched PyTorch on CPU was up to 2x faster with tcmalloc "
                   "here (LD_PRELOAD=libtcmalloc_minimal.so.4, Debian libtcmalloc-minimal4)")
    return out


def _parent(variant, variants: dict) -> str | None:
    if variant is None:
        return None
    for name in reversed(variant.lineage[:-1]):
        if name in variants:
            return name
    return None


def seed_matched(comparisons: list[dict], lineages: dict[str, tuple[str, ...]]) -> list[dict]:
    """The comparisons a reader needs when a reference was trained with several seeds
    (`NAME@SEED`): a variant of seed k (its own, or the nearest seeded step in its lineage)
    against the reference's seed k; a variant with no seed, or a seed the reference lacks,
    against the reference's first seed. Seed 1 of a step against seed 3 of another says
    nothing the seed-matched pair does not; with 5 seeds they were most of the table."""
    seeds = {base: [seed for seed, _ in members]
             for base, members in seed_groups(c["reference"] for c in comparisons).items()}

    out = []
    for c in comparisons:
        base, seed = split_seed(c["reference"])
        if seed is not None:
            mine = lineage_seed(lineages.get(c["variant"]) or (c["variant"],))
            if seed != (mine if mine in seeds[base] else min(seeds[base])):
                continue
        out.append(c)
    return out


def compare_to_references(result: BenchResult, references: tuple[str, ...]) -> list[dict]:
    """Each variant's best runtime against each reference's best, per batch size: speed-up,
    size ratio (reference bytes / variant bytes) and top-1 difference in points."""
    best = fastest_rows(result.rows)
    out = []
    for (variant, batch), row in best.items():
        for ref in references:
            ref_row = best.get((ref, batch))
            if ref_row is None or ref == variant:
                continue
            acc, ref_acc = result.accuracy(variant), result.accuracy(ref)
            size, ref_size = result.size_bytes(variant), result.size_bytes(ref)
            out.append({
                "variant": variant, "reference": ref, "batch_size": batch,
                "runtime": row.runtime, "reference_runtime": ref_row.runtime,
                "speedup": ref_row.median_s / row.median_s,
                "size_ratio": ref_size / size if size and ref_size else None,
                "accuracy_delta_points": (None if acc is None or ref_acc is None
                                          else (acc - ref_acc) * 100)})
    return out
