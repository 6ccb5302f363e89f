"""``turngym export ...``: take things out of a run (a sub-app mounted by turngym/cli/app.py).

    turngym export model runs/gn --out models/gn                  # the newest checkpoint's model
    turngym export model runs/gn --checkpoint 12 --out models/gn  # checkpoints/iter-000012
    turngym export episodes runs/gn-eval --format sft --only-success --out data/gn-sft
    turngym export episodes runs/gn-eval --format hf|dpo|tokens --out data/gn-...

The model directory is a plain Hugging Face model (LoRA merged, tokenizer and chat template):
``turngym eval --agent hf:models/gn``, ``vllm:models/gn`` and ``vllm serve models/gn`` load it as it is.
The episode formats are turngym/benchmarks/export.py's (a ``datasets`` dataset, TRL's SFT and DPO JSONL,
token streams).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from turngym.cli._common import fail_on

app = typer.Typer(help="Take a trained model or a run's episodes out of a run directory.", no_args_is_help=True)


@app.command("model")
def model(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A `turngym train` run directory.")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write the Hugging Face model to (new or empty).")],
    checkpoint: Annotated[
        int | None, typer.Option("--checkpoint", help="The checkpoint's iteration. [default: the newest]")
    ] = None,
) -> None:
    """Write a run's checkpoint model (LoRA merged) as a plain Hugging Face model directory."""
    from turngym.core.errors import TurngymError
    from turngym.trainers.policy import export_model

    try:
        path = export_model(run_dir, out=out, checkpoint=checkpoint)
    except TurngymError as e:
        raise fail_on(e) from None  # ConfigError: exit 2
    typer.echo(f"wrote {path} (load it with --agent hf:{path})")


@app.command("episodes")
def episodes(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A `turngym eval` or `turngym train` run directory.")],
    fmt: Annotated[
        Literal["hf", "sft", "dpo", "tokens"],
        typer.Option(
            "--format",
            help="hf: a datasets dataset (save_to_disk), one row per episode; sft: sft.jsonl of {'messages'} "
            "(TRL SFTTrainer, assistant_only_loss=True); dpo: dpo.jsonl of prompt/chosen/rejected within each "
            "group (TRL DPOTrainer); tokens: tokens.jsonl of token ids, loss mask, logprobs, turn spans.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Directory to write to (new or empty).")],
    only_success: Annotated[
        bool, typer.Option("--only-success", help="Only the episodes that succeeded (hf, sft, tokens).")
    ] = False,
    pairs: Annotated[
        Literal["best-worst", "all"],
        typer.Option("--pairs", help="dpo: one pair per group (best-worst) or every pair of unequal returns (all)."),
    ] = "best-worst",
    system: Annotated[
        Literal["env", "none"],
        typer.Option(
            "--system",
            help="The system message of hf/sft/dpo messages: env (the one an hf:/vllm: agent shows: the env's "
            "description and action format) or none.",
        ),
    ] = "env",
    runs: Annotated[
        list[str] | None,
        typer.Option("--run-id", help="Only this run id's episodes (a train run's it3, eval3); repeatable."),
    ] = None,
) -> None:
    """Write a run's episodes as a dataset: hf, sft, dpo or tokens."""
    from turngym.benchmarks.export import env_system_prompt, export_episodes
    from turngym.core.errors import TurngymError

    try:
        res = export_episodes(
            run_dir,
            fmt,
            out,
            only_success=only_success,
            pairs=pairs,
            system=env_system_prompt() if system == "env" else None,
            run_ids=runs,
        )
    except TurngymError as e:
        raise fail_on(e) from None  # ConfigError: exit 2
    left = "".join(f", {n} {why}" for why, n in res.left_out.items())
    typer.echo(f"wrote {res.path}: {res.rows} {'pairs' if fmt == 'dpo' else 'rows'} from {res.episodes} episodes{left}")
