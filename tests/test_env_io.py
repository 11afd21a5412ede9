import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from optbench import env
from optbench.errors import ConfigError
from optbench.io import atomic_write_json, safe_torch_load

CPUINFO = """processor\t: 0
model name\t: Some CPU 9000
flags\t\t: fpu sse avx2 avx512f avx512_vnni amx_tile amx_int8
processor\t: 1
model name\t: Some CPU 9000
flags\t\t: fpu
"""


def test_parse_cpuinfo_reads_model_and_isa_flags():
    info = env.parse_cpuinfo(CPUINFO)
    assert info["cpu_model"] == "Some CPU 9000"
    assert info["isa"]["avx512_vnni"] and info["isa"]["amx_int8"]
    assert not info["isa"]["amx_bf16"]


def test_detect_allocator_from_maps():
    assert env.detect_allocator("7f.. /usr/lib/libtcmalloc_minimal.so.4") == "tcmalloc"
    assert env.detect_allocator("7f.. /usr/lib/libc.so.6") == "glibc"


def test_capture_has_the_fields_results_need():
    info = env.capture()
    for key in ("cpu_model", "isa", "logical_cpus", "torch_threads", "allocator", "python",
                "packages", "git_commit", "date", "command"):
        assert key in info
    assert info["packages"]["torch"] == torch.__version__.split("+")[0]
    assert info["cpu_features"]["kind"] in ("amx", "avx512-vnni", "avx-vnni", "avx512", "avx2",
                                            "x86", "aarch64", "arm64")


def test_git_dirty_sees_uncommitted_changes(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "f.txt").write_text("a")
    git("add", "f.txt")
    git("commit", "-qm", "one")
    assert env.git_dirty(tmp_path) is False
    (tmp_path / "f.txt").write_text("b")
    assert env.git_dirty(tmp_path) is True


def test_atomic_write_keeps_the_old_file_when_serialization_fails(tmp_path):
    target = tmp_path / "r.json"
    atomic_write_json(target, {"ok": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


class Payload:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_safe_load_refuses_arbitrary_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"x": Payload()}, path)
    with pytest.raises(ConfigError, match="refusing to load"):
        safe_torch_load(path)


def test_import_is_light():
    code = ("import sys, optbench; heavy = {'onnxruntime', 'fastapi', 'prometheus_client', "
            "'matplotlib', 'mlflow'} & set(sys.modules); print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_device_name_says_the_cpu_model_and_its_class_or_the_gpu(monkeypatch, tmp_path):
    from optbench import isa

    monkeypatch.setattr(isa, "cpu_features", lambda: isa.CpuFeatures(avx2=True))
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO)
    real_path = Path
    monkeypatch.setattr(env, "Path", lambda p: cpuinfo if p == "/proc/cpuinfo" else real_path(p))
    assert env.device_name("cpu") == "Some CPU 9000 (avx2)"
    monkeypatch.setattr(env, "Path", lambda p: tmp_path / "absent")   # no /proc: platform's
    monkeypatch.setattr(env.platform, "processor", lambda: "x86_64")
    assert env.device_name("cpu") == "x86_64 (avx2)"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda dev: f"GPU {dev.index}")
    assert env.device_name("cuda:1") == "GPU 1"
    assert env.device_name("meta") == "meta"
