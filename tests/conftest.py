import os

import pytest
import torch
from torch import nn

from optbench.data import find_fashion_mnist, synthetic_dataset
from optbench.errors import MissingInputError

torch.set_num_threads(min(2, os.cpu_count() or 1))

pytest_plugins = ["require_all"]  # OPTBENCH_REQUIRE_ALL=1 (CI): a skipped requirement fails


# The suite's peak in the temp dir (pipeline runs, checkpoints, ONNX files) is ~1.2 GB with
# pyproject's tmp_path_retention_policy = "failed" (polled during `make test` at 7e69123); with
# too little free, tests failed at random with "No space left on device" instead of one clear
# message.
TEMP_SPACE_NEEDED = 2 * 2**30


def pytest_sessionstart(session):
    import shutil
    import tempfile

    if hasattr(session.config, "workerinput"):   # xdist workers: the controller checked
        return
    where = session.config.option.basetemp or tempfile.gettempdir()
    while not os.path.exists(where):
        where = os.path.dirname(os.path.abspath(where))
    free = shutil.disk_usage(where).free
    if free < TEMP_SPACE_NEEDED:
        pytest.exit(f"only {free / 2**30:.1f} GiB free under {where}; the tests need "
                    f"{TEMP_SPACE_NEEDED / 2**30:.0f} GiB free there for their temporary files "
                    "(pipeline runs, checkpoints, ONNX files). Free some space, or point TMPDIR "
                    "(or --basetemp) at a disk with more room",
                    returncode=pytest.ExitCode.USAGE_ERROR)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none is available here")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


class FakeClock:
    """A clock that only moves when FakeWork says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeWork:
    """A callable that 'takes' the next duration from a cycle, advancing the fake clock."""

    def __init__(self, clock: FakeClock, durations):
        self.clock, self.durations, self.calls = clock, list(durations), 0

    def __call__(self):
        self.clock.now += self.durations[self.calls % len(self.durations)]
        self.calls += 1


@pytest.fixture
def clock():
    return FakeClock()


class TinyNet(nn.Module):
    def __init__(self, in_channels=1, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return TinyNet().eval()


@pytest.fixture(scope="session")
def trained_tiny(synthetic):
    """TinyNet trained 5 epochs on the synthetic set: the contract tests' fp32 model (methods
    must leave it untouched, which they check)."""
    from optbench.train import TrainConfig, train

    torch.manual_seed(0)
    model = TinyNet()
    train(model, synthetic, TrainConfig(epochs=5, batch_size=32, lr=0.05, seed=3), progress=False)
    return model.eval()


@pytest.fixture(scope="session")
def synthetic():
    return synthetic_dataset(n=512, num_classes=10, size=16, seed=0)


@pytest.fixture(scope="session")
def fashion_dir():
    """The real Fashion-MNIST files; CI sets OPTBENCH_REQUIRE_REAL_DATA=1 so absence fails."""
    try:
        return find_fashion_mnist(download=False)
    except MissingInputError as exc:
        if os.environ.get("OPTBENCH_REQUIRE_REAL_DATA") == "1":
            raise
        pytest.skip(f"real Fashion-MNIST not installed: {exc}")


@pytest.fixture
def onnx_file(tiny_model, tmp_path):
    """tiny_model exported to ONNX (dynamic batch)."""
    from optbench.transforms.export import export_onnx

    return export_onnx(tiny_model, torch.randn(2, 1, 16, 16), tmp_path / "tiny.onnx")


@pytest.fixture
def reference():
    """The eager model's output as numpy: what every runtime must reproduce."""
    def run(model, x):
        with torch.no_grad():
            return model(x).numpy()

    return run
