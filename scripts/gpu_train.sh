#!/usr/bin/env bash
# Train a recipe's steps up to STEP on a lent GPU and hand back STEP's checkpoint: slimmed to
# float16 weights and cut into parts that cross the device tool's limits (8 files of 16 MiB),
# with SHA-256 sums (scripts/checkpoint_parts.py). Run from the repository root with the
# machine's python3 (PyTorch with CUDA); optbench is imported from the tree. Usage:
#   bash scripts/gpu_train.sh RECIPE STEP OUT [DATA_DIR]
#   e.g. bash scripts/gpu_train.sh recipes/composition_teacher.toml teacher $OUT .gpu/fashion-mnist
# then here, in the folder the CPU run continues in (it resumes from the finished checkpoint):
#   python scripts/checkpoint_parts.py join FILES_AT runs/composition/work/teacher-train.ckpt
#   LD_PRELOAD=$(bash scripts/tcmalloc.sh) optbench run recipes/composition_teacher.toml --out runs/composition
set -euo pipefail
recipe=${1:?usage: gpu_train.sh RECIPE STEP OUT [DATA_DIR]} step=${2:?STEP} out=${3:?OUT}
if [ $# -ge 4 ]; then export OPTBENCH_DATA_DIR=$4; fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
run=${GPU_TRAIN_RUN:-/tmp/gpu-train}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/nvidia-smi.txt"
if ! python3 -m optbench run "$recipe" --out "$run" --until "$step" --train-device cuda \
        > "$out/train.log" 2>&1; then
    tail -c 3000 "$out/train.log"; exit 1
fi
tail -c 1000 "$out/train.log"
ckpts=("$run/work/$step"-*.ckpt)
[ -f "${ckpts[0]}" ] || { echo "no checkpoint of step $step in $run/work" >&2; exit 1; }
python3 scripts/checkpoint_parts.py split "${ckpts[0]}" "$out"
