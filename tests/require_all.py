"""pytest plugin: with OPTBENCH_REQUIRE_ALL=1 (set by .ci/run) a test or module that skips
fails instead, naming what was missing, so CI cannot pass by silently skipping a required
tool (hey, schemathesis, uvicorn, mlflow, fairlearn, ART, kubernetes-validate, chromium,
prometheus, the real data...). Only skips for hardware this machine does not have are allowed.
"""

import os

import pytest

ALLOWED = ("needs a CUDA device",)


def _required() -> bool:
    return os.environ.get("OPTBENCH_REQUIRE_ALL") == "1"


def _reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail_if_required(report) -> None:
    if not (_required() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = _reason(report)
    if any(allowed in reason for allowed in ALLOWED):
        return
    report.outcome = "failed"
    report.longrepr = (f"OPTBENCH_REQUIRE_ALL=1, but this was skipped: {reason}. Install what "
                       "it names (make test installs the Python extras and, as root, the Debian "
                       "packages of scripts/sysdeps.sh), or unset OPTBENCH_REQUIRE_ALL outside CI.")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_if_required(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_if_required(outcome.get_result())
