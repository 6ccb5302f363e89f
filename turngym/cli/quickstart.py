"""``turngym quickstart``: train a tiny model on GuessNumber, eval before and after."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from turngym.cli._common import INTERRUPTED, USAGE, console, fail, fail_on


def quickstart(
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/quickstart"),
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override the demo config, e.g. iterations=50 (repeatable).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted quickstart run.")] = False,
) -> None:
    """Train a tiny model from scratch to play GuessNumber (Flow-GRPO, CPU): eval before, train, eval after."""
    from turngym.core.errors import TurngymError
    from turngym.trainers.quickstart import quickstart as run_quickstart

    if not resume and (out / "metrics.jsonl").exists():
        raise fail(f"{out} already holds a quickstart run: pass --resume to continue it, or --out another directory",
                   code=USAGE)
    console.print("Training a tiny model from scratch on GuessNumber 1..16 (6 turns) with Flow-GRPO.\n"
                  "Before and after: success on 64 held-out secrets, greedy.", highlight=False)
    try:
        summary = run_quickstart(out=out, overrides=set_ or [], resume=resume)
    except TurngymError as e:
        raise fail_on(e) from None
    except KeyboardInterrupt:
        raise fail(f"interrupted: continue with `turngym quickstart --out {out} --resume`", code=INTERRUPTED) from None
    table = Table(title="GuessNumber 1..16, held-out seeds")
    for col in ("", "success", "return", "turns"):
        table.add_column(col, justify="right" if col else "left")
    for name in ("before", "after"):
        m = summary[name]
        table.add_row(f"{name} training", f"{m['success']:.3f}", f"{m['return']:.3f}", f"{m['turns']:.2f}")
    console.print(table)
    console.print(f"{summary['episodes_seen']} episodes, {summary['seconds'] / 60:.1f} min\nreport: {summary['report']}",
                  highlight=False, soft_wrap=True)
