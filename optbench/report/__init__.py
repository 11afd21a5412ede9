"""Reports: result files (JSON, CSV), DataFrames, and the Markdown and HTML report, both
rendered from one document model (report.document) built from a BenchResult."""

from optbench.report.render import build_document, render_bench, render_html
from optbench.report.store import bench_frame, load_result, rerender, save_bench

__all__ = ["bench_frame", "build_document", "load_result", "render_bench", "render_html",
           "rerender", "save_bench"]
