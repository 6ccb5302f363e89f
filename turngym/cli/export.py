"""``turngym export ...``: take things out of a run (a sub-app mounted by turngym/cli/app.py).

    turngym export model runs/gn --out models/gn                  # the newest checkpoint's model
    turngym export model runs/gn --checkpoint 12 --out models/gn  # checkpoints/iter-000012

The model directory is a plain Hugging Face model (LoRA merged, tokenizer and chat template):
``turngym eval --agent hf:models/gn``, ``vllm:models/gn`` and ``vllm serve models/gn`` load it as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from turngym.cli._common import fail_on

app = typer.Typer(help="Take a trained model (or other artefacts) out of a run directory.", no_args_is_help=True)


@app.command("model")
def model(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A `turngym train` run directory.")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write the Hugging Face model to (new or empty).")],
    checkpoint: Annotated[int | None, typer.Option("--checkpoint", help="The checkpoint's iteration. [default: the newest]")] = None,
) -> None:
    """Write a run's checkpoint model (LoRA merged) as a plain Hugging Face model directory."""
    from turngym.core.errors import TurngymError
    from turngym.trainers.policy import export_model

    try:
        path = export_model(run_dir, out=out, checkpoint=checkpoint)
    except TurngymError as e:
        raise fail_on(e) from None  # ConfigError: exit 2
    typer.echo(f"wrote {path} (load it with --agent hf:{path})")
