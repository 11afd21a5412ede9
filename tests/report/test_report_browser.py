"""The HTML report opens in a real headless Chromium: images load, no console errors, and the
screenshot is not blank."""

import pytest
import torch
from browser import assert_not_blank, console_errors_and_screenshot, images_loaded, needs_chromium

from optbench.bench import BenchConfig, bench
from optbench.report import render_html

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


SORT_PROBE = """<script>window.addEventListener("load", () => {
  const table = [...document.querySelectorAll("table.sortable")].find(
    t => t.tHead.textContent.includes("p90 ms"));   // the latency table
  const col = [...table.tHead.rows[0].cells].findIndex(c => c.textContent === "median ms");
  const header = table.tHead.rows[0].cells[col];
  const column = () => [...table.tBodies[0].rows].map(r => r.cells[col].textContent);
  header.click();
  const up = column();
  header.click();
  document.title = "SORTED " + up.join(",") + ";" + column().join(","); });</script></body>"""


def test_a_click_on_a_column_header_sorts_the_table_by_value(report, tmp_path):
    from browser import chromium

    probe = tmp_path / "sort.html"
    probe.write_text(report.read_text().replace("</body>", SORT_PROBE))
    out = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    up, down = ([float(v) for v in part.split(",")]
                for part in out.stdout.split("<title>SORTED ")[1].split("<")[0].split(";"))
    assert len(up) >= 4 and up == sorted(up) and down == sorted(up, reverse=True)
