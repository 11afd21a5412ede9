"""The harness: size, latency, memory and quality, measured the same way for every variant.

Never imports optbench.transforms: how a variant was made does not change how it is measured.
"""

from optbench.measure.compare import Comparison, Ratio, compare
from optbench.measure.measurement import Measurement, TaskSpec
from optbench.measure.memory import (
    MemoryMeasurement,
    frozen_heap,
    measure_peak_memory,
    track_peak_memory,
)
from optbench.measure.quality import (
    Agreement,
    agreement,
    collect_logits,
    padded,
    per_class_accuracy,
    top1_accuracy,
)
from optbench.measure.size import SizeReport, artifact_size, model_size, onnx_size
from optbench.measure.timer import Timer, TimerConfig, time_callable

__all__ = [
    "Agreement", "Comparison", "Measurement", "MemoryMeasurement", "Ratio", "SizeReport",
    "TaskSpec", "Timer", "TimerConfig", "agreement", "artifact_size", "collect_logits", "compare",
    "frozen_heap",
    "measure_peak_memory", "model_size", "onnx_size", "padded", "per_class_accuracy",
    "time_callable", "top1_accuracy", "track_peak_memory",
]
