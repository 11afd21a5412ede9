"""optbench: make trained PyTorch models smaller and faster, and prove it.

Importing optbench stays light: onnxruntime, fastapi, prometheus_client and matplotlib are
imported only by the functions that need them.
"""

from optbench.bench import BenchConfig, BenchResult, bench
from optbench.config import Config
from optbench.data import (
    ImageTransform,
    find_fashion_mnist,
    load_fashion_mnist,
    make_loader,
    synthetic_dataset,
)
from optbench.errors import (
    ConfigError,
    MeasurementError,
    MissingInputError,
    OptbenchError,
    RuntimeUnavailableError,
)
from optbench.measure import TimerConfig, compare, measure_peak_memory, model_size, time_callable
from optbench.models import ZOO, build_model
from optbench.pipeline import Recipe, run_recipe
from optbench.runtime import get_runtime, runtime_names
from optbench.search import SearchConfig, search
from optbench.train import TrainConfig, evaluate, train
from optbench.transforms import Context, Variant, method_names, optimize

__version__ = "0.1.0"

__all__ = [
    "ZOO", "BenchConfig", "BenchResult", "Config", "ConfigError", "Context", "ImageTransform",
    "MeasurementError", "MissingInputError", "OptbenchError", "Recipe", "RuntimeUnavailableError",
    "SearchConfig", "TimerConfig", "TrainConfig", "Variant", "bench", "build_model", "compare",
    "evaluate", "find_fashion_mnist", "get_runtime", "load_fashion_mnist", "make_loader",
    "measure_peak_memory", "method_names", "model_size", "optimize", "run_recipe",
    "runtime_names", "search", "synthetic_dataset", "time_callable", "train",
]
