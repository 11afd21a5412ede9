#!/usr/bin/env bash
# The prepared CUDA check (see scripts/gpu_check.py): the cuda-marked tests, then the CUDA
# measurements. Usage: bash scripts/gpu_check.sh OUT [STUDENT_CKPT DATA_DIR [gpu_check.py options]]
# Runs from the repository root with the machine's python3 (PyTorch with CUDA); optbench is
# imported from the tree, so no install is needed beyond what the tests import.
set -uo pipefail
out=${1:?usage: gpu_check.sh OUT [STUDENT_CKPT DATA_DIR]}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/nvidia-smi.txt"
python3 -m pytest -q -m cuda -p no:cacheprovider tests/test_bench.py tests/measure/test_memory.py \
    tests/runtime/test_runtime.py tests/measure/test_timer.py tests/transforms/test_methods.py \
    tests/pipeline/test_pipeline.py 2>&1 | tee "$out/cuda-tests.log"
tests_rc=${PIPESTATUS[0]}
extra=()
if [ $# -ge 3 ]; then extra=(--student "$2" --data-dir "$3" "${@:4}"); fi
python3 scripts/gpu_check.py --out "$out" "${extra[@]}" 2>&1 | tee "$out/gpu-check.log"
check_rc=${PIPESTATUS[0]}
echo "cuda tests rc=$tests_rc, gpu_check rc=$check_rc"
exit $(( tests_rc || check_rc ))
