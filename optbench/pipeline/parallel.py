"""Training independent steps side by side (`optbench run --jobs N`).

On a small machine one training process does not use its cores well: on 2 cores of an AVX2
EPYC, two distilled MobileNetV2 students training with 1 thread each got through 1.28x the
steps of one training with 2 (results/thread_scaling). So when the pipeline reaches a run of
training steps that need nothing but what is already done (the seeds of one step, scratch and
distilled students of one finished teacher), it trains up to N of them at once, each in a
fresh process with cores / N threads, and then goes on as usual: each step resumes from its
finished checkpoint (the shared loop's resume), so the variants, the state file and the
report are made by the one pipeline process as without --jobs. The weights are those of a
one-process run with the workers' thread count, bit for bit (tests/pipeline/test_parallel.py);
other thread counts round differently.

A worker rebuilds what its step needs (the data, the models, the finished steps its input and
teacher come from, each resumed from its checkpoint) and writes nothing but the step's own
checkpoints in OUT/work. Only `train` and `distill` steps go to workers: their whole cost is
one training run that a checkpoint holds.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import sys
from pathlib import Path

from optbench.errors import ConfigError

TRAINING_METHODS = ("train", "distill")


def dependencies(recipe, index: int) -> set[str]:
    """The variants step `index` reads: its input and its teacher."""
    teacher = getattr(recipe.steps[index].config, "teacher", "")
    return {recipe.input_of(index), *([teacher] if teacher else [])}


def needed_steps(recipe, index: int) -> list[int]:
    """Step `index` and every earlier step it depends on, in recipe order."""
    position = {step.name: i for i, step in enumerate(recipe.steps)}
    todo, needed = [index], set()
    while todo:
        i = todo.pop()
        if i not in needed:
            needed.add(i)
            todo.extend(position[d] for d in dependencies(recipe, i) if d in position)
    return sorted(needed)


def side_by_side_batch(recipe, start: int, done: set[str], skip: set[str]) -> list[int]:
    """The training steps from `start` on that only read what is `done`: the consecutive run of
    them, less those in `skip` (finished before, or trained side by side already)."""
    batch = []
    for i in range(start, len(recipe.steps)):
        step = recipe.steps[i]
        if step.config.method not in TRAINING_METHODS or not dependencies(recipe, i) <= done:
            break
        if step.name not in skip:
            batch.append(i)
    return batch


class SideBySide:
    """The pipeline's helper for --jobs: trains each batch of independent training steps in
    worker processes before the pipeline reaches them."""

    def __init__(self, recipe, out: Path, jobs: int, worker, progress: bool = True):
        """`worker(recipe, out, name, threads)` trains step `name` in the worker process and
        returns its last epoch's record (pipeline.run.train_in_worker)."""
        if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
            raise ConfigError(f"jobs must be a whole number >= 1 (1: train one step at a time "
                              f"in this process), got {jobs!r}")
        self.recipe, self.out, self.jobs, self.progress = recipe, out, jobs, progress
        self.worker = worker
        self.trained: set[str] = set()   # names trained by workers in this run

    def train_from(self, start: int, recipe, done: set[str], finished: set[str]) -> None:
        """Before step `start` runs: train its batch in workers when it has two steps or more
        (one step trains faster in this process, on every core)."""
        if self.jobs == 1:
            return
        batch = side_by_side_batch(recipe, start, done, finished | self.trained)
        if len(batch) < 2 or start not in batch:
            return
        names = [recipe.steps[i].name for i in batch]
        workers = min(self.jobs, len(names))
        threads = max(1, _cores() // workers)
        self._say(f"training {len(names)} steps {workers} at a time, each in a process of its "
                  f"own with {threads} thread{'s' * (threads > 1)}: {', '.join(names)}")
        context = multiprocessing.get_context("spawn")
        failures = []
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context,
                                                    max_tasks_per_child=1) as pool:
            futures = {pool.submit(self.worker, self.recipe, str(self.out), name, threads):
                       name for name in names}
            for future in concurrent.futures.as_completed(futures):
                name = futures[future]
                try:
                    last = future.result()
                except Exception as exc:   # the others keep training; raised once they end
                    failures.append((name, exc))
                    self._say(f"{name} failed in its worker: {exc}")
                    continue
                self.trained.add(name)
                self._say(f"{name} trained ({_describe(last)})")
        if failures:
            name, exc = failures[0]
            raise RuntimeError(f"step {name!r} failed while training side by side (--jobs "
                               f"{self.jobs}): {exc}. Its checkpoint keeps what it finished; "
                               "run the same command again to resume, or without --jobs to "
                               "see the failure in this process") from exc

    def _say(self, text: str) -> None:
        if self.progress:
            print(f"[jobs] {text}", file=sys.stderr, flush=True)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        return os.cpu_count() or 1


def _describe(record: dict) -> str:
    parts = [f"epoch {record['epoch']}"] if "epoch" in record else []
    if "val_accuracy" in record:
        parts.append(f"val top-1 {record['val_accuracy']:.2%}")
    if "seconds" in record:
        parts.append(f"last epoch {record['seconds'] / 60:.1f} min")
    return ", ".join(parts) or "no record"
