"""The HTML report opens in a real headless Chromium: images load, no console errors, and the
screenshot is not blank. CI installs Debian's chromium (scripts/sysdeps.sh)."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

from optbench.bench import BenchConfig, bench
from optbench.report.html import render_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--hide-scrollbars", "--window-size=1200,1600"]
CHECK_IMAGES = """<script>window.addEventListener("load", () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.title = "IMAGES " + ok + "/" + imgs.length; });</script></body>"""

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("OPTBENCH_REQUIRE_BROWSER") != "1",
    reason="chromium not installed (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def report(synthetic, tmp_path_factory):
    from conftest import TinyNet

    torch.manual_seed(0)
    config = BenchConfig(runtimes=("torch-eager", "onnxruntime"), batch_sizes=(1, 4),
                         input_shape=(1, 16, 16), min_time_s=0.05, max_time_s=0.3)
    result = bench(TinyNet().eval(), config, label="tiny", eval_data=synthetic).to_dict()
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_html(result))
    return path


def _chromium(tmp_path, *args):
    assert CHROMIUM, "OPTBENCH_REQUIRE_BROWSER=1 but chromium is not installed"
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


def test_every_image_loads(report, tmp_path):
    probe = tmp_path / "probe.html"  # a copy with a counting script; the report has none
    probe.write_text(report.read_text().replace("</body>", CHECK_IMAGES))
    out = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    match = re.search(r"<title>IMAGES (\d+)/(\d+)</title>", out.stdout)
    assert match, out.stderr[-2000:]
    loaded, total = map(int, match.groups())
    assert total == 4 and loaded == total


def test_no_console_errors_and_screenshot_not_blank(report, tmp_path):
    shot = tmp_path / "shot.png"
    out = _chromium(tmp_path, "--enable-logging=stderr", "--v=0", f"--screenshot={shot}",
                    report.as_uri())
    console_errors = [line for line in out.stderr.splitlines()
                      if "CONSOLE" in line or "Uncaught" in line]
    assert console_errors == []
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))[..., :3]
    assert pixels.shape[0] > 500 and pixels.shape[1] > 500
    not_white = (pixels < 0.95).any(axis=-1).mean()
    assert not_white > 0.02  # text, tables and plots cover part of the page
    assert np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0).shape[0] > 50
