#!/usr/bin/env bash
# Reference measurement for the methods issue: every method on ResNet50 and MobileNetV2 at
# 224x224, batch 1 and 8, fp32 torch eager as the baseline, 2 threads, tcmalloc preloaded.
# Run from the repo root after `make test` has built .venv. Checkpoints/ONNX stay in runs/.
set -euo pipefail
export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
for m in resnet50 mobilenet_v2; do
  .venv/bin/python -m optbench run "recipes/methods_224_$m.toml" --out "runs/methods_224_$m"
  mkdir -p "results/methods/$m"
  cp "runs/methods_224_$m"/report.{json,csv,md,html} "results/methods/$m/"
done
