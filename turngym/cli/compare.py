"""``turngym compare RUN_A RUN_B``: one page with the per-env deltas of two runs (turngym.benchmarks.compare)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from turngym.cli._common import console, fail_on


def compare(
    run_a: Annotated[Path, typer.Argument(metavar="RUN_A", help="The baseline run directory (eval or train).")],
    run_b: Annotated[Path, typer.Argument(metavar="RUN_B", help="The run compared with it (deltas are B - A).")],
    out: Annotated[
        Path | None, typer.Option(help="The page to write. [default: compare-<A>-vs-<B>.html in this directory]")
    ] = None,
) -> None:
    """Write compare.html: per-env deltas of success rate (with a 95% Newcombe interval of the difference),
    mean return and turns, and the two runs' metadata side by side; print its path."""
    from turngym.benchmarks.compare import run_figures, write_compare
    from turngym.core.errors import ConfigError

    try:
        a, b = run_figures(run_a), run_figures(run_b)
    except ConfigError as e:
        raise fail_on(e) from None
    out = out or Path(f"compare-{a.path.resolve().name}-vs-{b.path.resolve().name}.html")
    console.print(str(write_compare(out, a, b).resolve()), highlight=False)
