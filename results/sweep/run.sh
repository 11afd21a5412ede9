#!/usr/bin/env bash
# results/sweep: the same sweep through Ray (a local cluster) and the local executor, then the
# Ray overhead per tiny trial; on a quiet machine (no training, no tests), tcmalloc preloaded.
set -euo pipefail
cd "$(dirname "$0")/../.."
export LD_PRELOAD=$(bash scripts/tcmalloc.sh)
for executor in ray local; do
    .venv/bin/optbench sweep sweeps/fashion_models_methods.toml --out runs/sweep-$executor \
        --executor $executor
    .venv/bin/optbench sweep sweeps/tiny_overhead.toml --out runs/tiny-$executor \
        --executor $executor
    mkdir -p results/sweep/$executor results/sweep/tiny-$executor
    cp runs/sweep-$executor/{merged.md,merged.html,merged.csv,merged.json,sweep.json} \
        results/sweep/$executor/
    cp runs/tiny-$executor/{merged.md,merged.csv,merged.json,sweep.json} results/sweep/tiny-$executor/
done
