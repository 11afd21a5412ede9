"""The environment for a pytest run a test starts in a subprocess: this one's, minus the
variables pytest-xdist sets in its workers. A child that inherited them would take itself for
an xdist worker, and pytest-benchmark turns benchmarking off under xdist (no JSON written, no
compare gate)."""

import os


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTEST_XDIST") and k != "PYTEST_CURRENT_TEST"}
    return {**env, **extra}
