#!/usr/bin/env bash
# The tail-stall experiment behind results/serving/stalls/stalls.md: an int8 MobileNetV2 (ONNX
# Runtime static, random weights: its latency is that of a trained one; built by
# benchmarks/serving_load.py's demo_artifact) served by `optbench serve` on loopback, batched and
# naive, with CPython's collector as is and with --gc freeze (the default since 1655d7b), each
# under the same MLPerf LoadGen Server load: Poisson arrivals at 500 queries/s of PNG uploads,
# at least 15,000 queries per row. Run on a quiet machine (no training, no tests).
set -euo pipefail
cd "$(dirname "$0")/../../.."
DEMO=${DEMO:-/tmp/serve-demo}
[ -f "$DEMO/mnv2-int8/manifest.json" ] || PYTHONPATH=. .venv/bin/python -c \
    "import sys; sys.path.insert(0, 'benchmarks'); import serving_load, pathlib; \
serving_load.demo_artifact(pathlib.Path('$DEMO'))"
LD_PRELOAD=$(bash scripts/tcmalloc.sh) .venv/bin/python benchmarks/serving_stalls.py \
    "$DEMO/mnv2-int8/manifest.json" --qps 500 --path v1-png --duration-s 30 --min-queries 15000 \
    --config "batched, python gc=--gc python" --config "batched, gc freeze (default)=" \
    --config "naive, python gc=--no-batching --gc python" --config "naive, gc freeze=--no-batching" \
    --out results/serving/stalls
