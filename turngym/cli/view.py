"""``turngym view``: open a run's report."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from turngym.cli._common import console, fail


def view(run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR")]) -> None:
    """Print the path of a run's report.html and open it in a browser where a display exists."""
    report = run_dir / "report.html"
    if not report.is_file():
        raise fail(f"{report} does not exist: is {run_dir} a finished `turngym eval` run directory?")
    console.print(str(report.resolve()), highlight=False)
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform in ("darwin", "win32"):
        import webbrowser

        webbrowser.open(report.resolve().as_uri())
