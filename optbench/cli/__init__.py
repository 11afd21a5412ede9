"""Command line: `optbench VERB`, one module per verb group, each thin: it parses flags (their
defaults read from the config classes) and calls the library. Every verb has --help.

    bench    measure a model across runtimes and batch sizes       (cli.bench)
    demo     train a small model, measure it, report               (cli.bench)
    run      run a recipe; report re-renders a results folder      (cli.run)
    env      the machine description stored with every result      (cli.run)
    package  make a deployable artifact; serve: serve artifacts    (cli.serve)
    drift    input drift test; abtest: compare the arms of a route (cli.monitor)
"""

from __future__ import annotations

import argparse
import sys

from optbench.errors import OptbenchError


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except OptbenchError as exc:
        print(f"optbench: error: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    from optbench.cli import bench, monitor, run, serve

    p = argparse.ArgumentParser(prog="optbench", description="Make PyTorch models smaller and "
                                "faster, and measure what it buys.")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for module in (bench, run, serve, monitor):
        module.add_parsers(sub)
    return p
