#!/usr/bin/env bash
# Reference measurement for the foundation issue: ResNet50 and MobileNetV2 (random init,
# 1000 classes, 224x224), batch 1 and 8, torch eager / torch.compile / ONNX Runtime, 2 threads,
# tcmalloc preloaded. Run from the repo root after `make test` has built .venv.
set -euo pipefail
export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
for model in resnet50 mobilenet_v2; do
  .venv/bin/python -m optbench bench "$model" --num-classes 1000 --input-shape 3,224,224 \
    --batch-sizes 1,8 --runtimes torch-eager,torch-compile,onnxruntime --threads 2 \
    --min-time 3 --max-time 15 --out "results/foundation/$model"
done
