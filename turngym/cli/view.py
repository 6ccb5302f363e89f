"""``turngym view``: open a run's report, an eval run's or a training run's."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from turngym.cli._common import console, fail


def view(run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR")]) -> None:
    """Print the path of a run's report.html (an eval or a training run) and open it in a browser where a
    display exists. A training run that has written none yet (killed before its first eval) gets one now."""
    report = run_dir / "report.html"
    if not report.is_file() and (run_dir / "metrics.jsonl").is_file():
        from turngym.benchmarks.report import write_train_report

        report = write_train_report(run_dir)
    if not report.is_file():
        raise fail(
            f"{report} does not exist: {run_dir} is neither a finished `turngym eval` run directory nor a "
            "`turngym train` run directory (one with metrics.jsonl); pass the directory the command wrote"
        )
    console.print(str(report.resolve()), highlight=False)
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform in ("darwin", "win32"):
        import webbrowser

        webbrowser.open(report.resolve().as_uri())
