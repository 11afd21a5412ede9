"""The HTML report opens in a real headless Chromium: images load, no console errors, and the
screenshot is not blank."""

import pytest
import torch
from browser import assert_not_blank, console_errors_and_screenshot, images_loaded, needs_chromium

from optbench.bench import BenchConfig, bench
from optbench.report.html import render_html

pytestmark = needs_chromium


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


def test_every_image_loads(report, tmp_path):
    assert images_loaded(report, tmp_path) == (4, 4)


def test_no_console_errors_and_screenshot_not_blank(report, tmp_path):
    errors, pixels = console_errors_and_screenshot(report, tmp_path)
    assert errors == []
    assert_not_blank(pixels)
