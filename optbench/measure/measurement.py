"""Raw samples plus a frozen description of what was measured; statistics computed lazily."""

from __future__ import annotations

import dataclasses
from functools import cached_property

from optbench import stats


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What was timed: enough to tell two measurements apart in a table."""

    label: str
    runtime: str = ""
    device: str = "cpu"
    batch_size: int = 1
    input_shape: tuple[int, ...] = ()
    threads: int = 0
    dtype: str = "float32"

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "input_shape": list(self.input_shape)}

    @classmethod
    def from_dict(cls, data: dict) -> TaskSpec:
        return cls(**{**data, "input_shape": tuple(data.get("input_shape", ()))})


@dataclasses.dataclass(frozen=True)
class Measurement:
    """Per-call latency samples (seconds; each the mean of one block of `block_size` calls)."""

    spec: TaskSpec
    samples_s: tuple[float, ...]
    block_size: int = 1
    stop_reason: str = ""
    warnings: tuple[str, ...] = ()
    # samples per fresh process, in order, when pooled from several (processes = N); () = one
    process_sizes: tuple[int, ...] = ()

    def groups(self) -> list[tuple[float, ...]]:
        """The samples of each process (one group when timed in one process)."""
        if not self.process_sizes:
            return [self.samples_s]
        out, start = [], 0
        for n in self.process_sizes:
            out.append(self.samples_s[start:start + n])
            start += n
        return out

    @property
    def processes(self) -> int:
        return max(1, len(self.process_sizes))

    @cached_property
    def between_process_spread(self) -> float | None:
        """(max - min) / median of the per-process medians; None for one process."""
        if self.processes < 2:
            return None
        medians = [stats.quantile(g, 0.5) for g in self.groups() if g]
        return (max(medians) - min(medians)) / stats.quantile(medians, 0.5)

    @cached_property
    def median_s(self) -> float:
        return stats.quantile(self.samples_s, 0.5)

    @cached_property
    def mean_s(self) -> float:
        return sum(self.samples_s) / len(self.samples_s)

    @cached_property
    def iqr_s(self) -> float:
        return stats.iqr(self.samples_s)

    @cached_property
    def p90_s(self) -> float:
        return stats.quantile(self.samples_s, 0.90)

    @cached_property
    def p99_s(self) -> float:
        return stats.quantile(self.samples_s, 0.99)

    @cached_property
    def min_s(self) -> float:
        return min(self.samples_s)

    @property
    def throughput_items_s(self) -> float:
        """Items per second at the median: batch_size / median_s."""
        return self.spec.batch_size / self.median_s

    def summary(self) -> dict:
        out = {"median_s": self.median_s, "mean_s": self.mean_s, "iqr_s": self.iqr_s,
               "p90_s": self.p90_s, "p99_s": self.p99_s, "min_s": self.min_s,
               "throughput_items_s": self.throughput_items_s, "n_samples": len(self.samples_s)}
        if self.processes > 1:
            out.update(processes=self.processes,
                       between_process_spread=self.between_process_spread)
        return out

    def to_dict(self) -> dict:
        return {"spec": self.spec.to_dict(), "stats": self.summary(),
                "samples_s": list(self.samples_s), "block_size": self.block_size,
                "stop_reason": self.stop_reason, "warnings": list(self.warnings),
                **({"process_sizes": list(self.process_sizes)} if self.process_sizes else {})}

    @classmethod
    def from_dict(cls, data: dict) -> Measurement:
        return cls(spec=TaskSpec.from_dict(data["spec"]), samples_s=tuple(data["samples_s"]),
                   block_size=data.get("block_size", 1), stop_reason=data.get("stop_reason", ""),
                   warnings=tuple(data.get("warnings", ())),
                   process_sizes=tuple(data.get("process_sizes", ())))
