"""Reports: result files (JSON, CSV), DataFrames and Markdown tables of bench results."""

from optbench.report.markdown import render_bench
from optbench.report.store import bench_frame, load_result, save_bench

__all__ = ["bench_frame", "load_result", "render_bench", "save_bench"]
