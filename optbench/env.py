"""The machine a result was measured on: stored with every result (DESIGN rule 7)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ISA_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile",
             "amx_int8", "amx_bf16")
_PACKAGES = ("torch", "torchvision", "onnx", "onnxruntime", "onnxscript", "numpy", "torchao",
             "torch-pruning", "openvino", "nncf")


def parse_cpuinfo(text: str) -> dict:
    """CPU model name and the ISA flags that matter for int8/bf16 speed, from /proc/cpuinfo."""
    model, flags = "unknown", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown":
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return {"cpu_model": model, "isa": {flag: flag in flags for flag in ISA_FLAGS}}


def device_name(device: str = "cpu") -> str:
    """What a device is, in a few words: a CPU's model and int8/bf16 class ("Intel(R) Xeon(R)
    Processor (amx)"), or a GPU's name (training records say where each epoch ran)."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    if dev.type != "cpu":
        return dev.type
    from optbench.isa import cpu_features

    try:
        model = parse_cpuinfo(Path("/proc/cpuinfo").read_text())["cpu_model"]
    except OSError:
        model = platform.processor() or "unknown CPU"
    return f"{model} ({cpu_features().kind})"


def detect_allocator(maps_text: str | None = None) -> str:
    """Which malloc this process uses: tcmalloc, jemalloc or glibc (from /proc/self/maps)."""
    if maps_text is None:
        try:
            maps_text = Path("/proc/self/maps").read_text()
        except OSError:
            return "unknown"
    for name in ("tcmalloc", "jemalloc", "mimalloc"):
        if name in maps_text:
            return name
    return "glibc"


def package_versions() -> dict[str, str | None]:
    """Installed versions, read from metadata so nothing heavy gets imported."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def git_dirty(cwd: str | os.PathLike | None = None) -> bool | None:
    """Whether the working tree has uncommitted changes to tracked files (None outside git)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                             capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip())


MACHINE_KIND = ("cpu_model", "isa", "cpu_features", "logical_cpus")
PROVENANCE = ("git_commit", "git_dirty", "date", "command", "cpu_model")


def provenance(env: dict | None = None) -> dict:
    """Where and when something ran (a report stage, a timing process): commit (and whether
    the tree was dirty), date (UTC), command and CPU, from `env` (default: `capture()` now)."""
    env = capture() if env is None else env
    return {key: env.get(key) for key in PROVENANCE}


def machine_kind(env: dict) -> dict:
    """What must match for two measurements to be compared: the CPU, its instruction set and
    the number of logical CPUs (from an env of `capture`)."""
    return {key: env.get(key) for key in MACHINE_KIND}


def capture() -> dict:
    """A JSON-ready description of this machine and software, taken now."""
    try:
        cpu = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        cpu = {"cpu_model": platform.processor() or "unknown", "isa": {}}
    import torch  # torch is a hard dependency; imported here to read its threads and CUDA

    from optbench.isa import cpu_features

    env = {
        **cpu,
        "cpu_features": cpu_features().to_dict(),   # from CPUID, what the int8 kernels see
        "machine": platform.machine(),
        "os": platform.platform(),
        "logical_cpus": os.cpu_count(),
        "physical_cpus": _physical_cpus(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "allocator": detect_allocator(),
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "cuda": _cuda_info(torch),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": _command(),
    }
    return env


def _command() -> str:
    """The command line as typed (interpreter and -m included), relative to the venv's bin."""
    argv = list(getattr(sys, "orig_argv", sys.argv))
    if argv and Path(argv[0]).name.startswith("python"):
        argv[0] = Path(argv[0]).name
    return shlex.join(argv)


def _physical_cpus() -> int | None:
    try:
        import psutil

        return psutil.cpu_count(logical=False)
    except Exception:  # psutil missing or unsupported platform
        return None


def _cuda_info(torch) -> dict | None:
    if not torch.cuda.is_available():
        return None
    return {"device": torch.cuda.get_device_name(0), "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version()}
