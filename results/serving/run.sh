#!/usr/bin/env bash
# The serving load benchmark behind results/serving/{int8-student,teacher-onnx}/loadgen.md:
# MLPerf LoadGen (SingleStream, Offline, Server with a peak-rate search per p99 bound and a run
# at 80% of the peak) against `optbench serve` on loopback, batched and naive, 1 and 2 worker
# processes, for the flagship recipe's two deployed shapes:
#   - its int8 student (`student-int8-ort`: pruned MobileNetV2, ONNX Runtime static int8), over
#     v1 PNG uploads and v2 binary tensors;
#   - its fp32 teacher as ONNX (`teacher-onnx`: ResNet50 with the small-pool stem), the heavier
#     model where inference dominates, batched, over v2 binary tensors, SingleStream and Offline
#     only: it serves ~150 queries/s, so each 10,000-query Server run takes 1-7 minutes and a
#     peak search takes most of an hour per server.
# SRC is a run folder of recipes/fashion_resnet50_to_mobilenet.toml. Latency does not depend on
# the weights, so by default the recipe's quick run provides the artifacts (same networks, a few
# training steps; its accuracy is meaningless); SRC=runs/flagship2 serves the trained ones.
# Run on a quiet machine: no training, no tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
SRC=${SRC:-runs/serve-src}
PRELOAD=$(bash scripts/tcmalloc.sh)
[ -f "$SRC/artifacts/student-int8-ort/manifest.json" ] || LD_PRELOAD=$PRELOAD \
    .venv/bin/python -m optbench run recipes/fashion_resnet50_to_mobilenet.toml --quick --out "$SRC"
LD_PRELOAD=$PRELOAD .venv/bin/python benchmarks/serving_loadgen.py \
    "$SRC/artifacts/student-int8-ort/manifest.json" --steps 5 --raw-target 0.25 \
    --out results/serving/int8-student
LD_PRELOAD=$PRELOAD .venv/bin/python benchmarks/serving_loadgen.py \
    "$SRC/artifacts/teacher-onnx/manifest.json" --paths v2-binary --designs batched \
    --bounds-ms none \
    --raw-target 0.5 --out results/serving/teacher-onnx
