import re

import pytest
import torch

from optbench.bench import BenchConfig, bench
from optbench.report.html import render_html
from optbench.report.plots import pareto_front


def test_pareto_front_known_answer():
    # (latency, accuracy): b dominates c (faster and more accurate); a and b trade off
    points = [(1.0, 0.80), (2.0, 0.90), (3.0, 0.85), (0.5, 0.70), (2.0, 0.89)]
    assert pareto_front(points) == [0, 1, 3]


@pytest.fixture(scope="module")
def result(synthetic):
    from conftest import TinyNet

    torch.manual_seed(0)
    config = BenchConfig(runtimes=("torch-eager", "onnxruntime"), batch_sizes=(1, 4),
                         input_shape=(1, 16, 16), min_time_s=0.05, max_time_s=0.3)
    return bench(TinyNet().eval(), config, label="tiny", eval_data=synthetic).to_dict()


def test_html_report_is_self_contained_with_all_plots(result):
    page = render_html(result)
    assert page.startswith("<!doctype html>")
    images = re.findall(r'<img alt="(\w+)" id="plot-\w+" src="data:image/png;base64,', page)
    assert images == ["accuracy_vs_latency", "size_per_variant", "latency_distributions",
                      "throughput_vs_batch"]
    assert not re.search(r'(src|href)="https?://', page)
    assert "<table>" in page and "tiny / onnxruntime" in page


def test_save_bench_writes_readable_files(result, tmp_path):
    from optbench.report import save_bench

    paths = save_bench(result, tmp_path)
    assert set(paths) == {"json", "csv", "md", "html"}
    assert all(p.stat().st_mode & 0o044 for p in paths.values())  # group/other can read
