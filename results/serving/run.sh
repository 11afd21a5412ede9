#!/usr/bin/env bash
# The serving load benchmark behind results/serving/load.md: the flagship's int8 MobileNetV2
# artifact (written by the full flagship run) served by `optbench serve` on loopback and driven
# by hey, naive vs dynamic batching at 1, 8 and 32 clients; 10,016 requests each (hey rounds
# the count down to a multiple of the clients: 10,000 would send 9,984 at 32 clients).
set -euo pipefail
cd "$(dirname "$0")/../.."
ARTIFACT=${ARTIFACT:-results/flagship/artifacts/student-int8-ort/manifest.json}
LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
    .venv/bin/python benchmarks/serving_load.py "$ARTIFACT" --requests 10016 --clients 1,8,32 \
    --threads 1 --out results/serving
