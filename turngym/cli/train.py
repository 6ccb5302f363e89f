"""``turngym train``: one run of multi-turn RL from a YAML config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from turngym.cli._common import INTERRUPTED, console, fail, fail_on


def train(
    config: Annotated[Path, typer.Option("--config", "-c", help="The run's YAML config (env or suite, algorithm, model, hyper-parameters).")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Config override KEY=VALUE, e.g. optim.lr=1e-5 (repeatable).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in run_dir from its newest checkpoint.")] = False,
) -> None:
    """Train an agent with multi-turn RL (grpo, rloo, flow_grpo, mt_grpo, gigpo, bilevel_gae, branch_baseline, archer)."""
    from turngym.core.errors import TurngymError
    from turngym.trainers.train import make_trainer, train_config

    try:
        cfg = train_config(config, set_ or [])
        summary = make_trainer(cfg).run(resume=resume)
    except TurngymError as e:
        raise fail_on(e) from None
    except KeyboardInterrupt:
        raise fail("interrupted: continue the run with the same command and --resume", code=INTERRUPTED) from None
    console.print(f"run directory: {summary['run_dir']}  iterations: {summary['iterations']}  "
                  f"episodes: {summary['episodes_seen']}", highlight=False, soft_wrap=True)
    if summary.get("eval"):
        console.print("held-out eval: " + "  ".join(f"{k} {v:.3f}" for k, v in summary["eval"].items()), highlight=False)
