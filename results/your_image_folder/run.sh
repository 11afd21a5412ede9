#!/usr/bin/env bash
# results/your_image_folder: recipes/your_image_folder.toml on an image folder of real images
# (Fashion-MNIST's 10,000 test images as PNG files in class folders, written by
# scripts/make_image_folder.py), a torchvision RegNet-X-400MF and a timm ResNet10t, through
# structured pruning, ORT static int8 and ONNX export.
# Training may share the machine (--no-measure); the measurement runs on a quiet machine (no
# training, no tests), tcmalloc preloaded, as the second command.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=${RUN:-runs/your_image_folder}
.venv/bin/python scripts/make_image_folder.py --out runs/fashion-png
.venv/bin/python -m optbench run recipes/your_image_folder.toml --out "$RUN" --no-measure
LD_PRELOAD=$(bash scripts/tcmalloc.sh) .venv/bin/python -m optbench run \
    recipes/your_image_folder.toml --out "$RUN"
cp "$RUN"/report.{md,json,csv,html} "$RUN"/predictions.npz results/your_image_folder/
