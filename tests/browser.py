"""Headless Chromium checks shared by the report tests (Debian's chromium; CI installs it)."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--hide-scrollbars", "--window-size=1200,1600"]
CHECK_IMAGES = """<script>window.addEventListener("load", () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.title = "IMAGES " + ok + "/" + imgs.length; });</script></body>"""

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("OPTBENCH_REQUIRE_BROWSER") != "1",
    reason="chromium not installed (apt-get install -y chromium)")


def chromium(tmp_path, *args):
    assert CHROMIUM, "OPTBENCH_REQUIRE_BROWSER=1 but chromium is not installed"
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


def images_loaded(report, tmp_path) -> tuple[int, int]:
    """(loaded, total) images, from a copy of the page with a counting script added."""
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", CHECK_IMAGES))
    out = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    match = re.search(r"<title>IMAGES (\d+)/(\d+)</title>", out.stdout)
    assert match, out.stderr[-2000:]
    loaded, total = map(int, match.groups())
    return loaded, total


def console_errors_and_screenshot(report, tmp_path):
    """Console errors logged while rendering, and the screenshot as an RGB float array."""
    shot = tmp_path / "shot.png"
    out = chromium(tmp_path, "--enable-logging=stderr", "--v=0", f"--screenshot={shot}",
                   report.as_uri())
    errors = [line for line in out.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    import matplotlib.image

    return errors, matplotlib.image.imread(str(shot))[..., :3]


def assert_not_blank(pixels) -> None:
    assert pixels.shape[0] > 500 and pixels.shape[1] > 500
    assert (pixels < 0.95).any(axis=-1).mean() > 0.02  # text, tables and plots cover the page
    assert np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0).shape[0] > 50
