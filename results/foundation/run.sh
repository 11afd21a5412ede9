#!/usr/bin/env bash
# Reference measurement for the foundation issue: ResNet50 and MobileNetV2 (random init,
# 1000 classes, 224x224), batch 1 and 8, torch eager / torch.compile / ONNX Runtime, 2 threads,
# tcmalloc preloaded; timed in 3 fresh processes (speed-up CIs over processes) and each entry's
# memory measured in a fresh process of its own. Run from the repo root after `make test` has
# built .venv, with nothing else running.
set -euo pipefail
LD_PRELOAD=$(bash scripts/tcmalloc.sh)
export LD_PRELOAD
for model in resnet50 mobilenet_v2; do
  .venv/bin/python -m optbench bench "$model" --num-classes 1000 --input-shape 3,224,224 \
    --batch-sizes 1,8 --runtimes torch-eager,torch-compile,onnxruntime --threads 2 \
    --min-time 1 --max-time 5 --processes 3 --memory process --out "results/foundation/$model"
done
