"""`turngym models ...` subcommands (a sub-app mounted by turngym/cli/app.py).

    turngym models tiny --out .cache/tiny-models/tiny
    turngym models tiny --out models/gn --tokenizer task:guess_number --tied
"""

from pathlib import Path

import typer

app = typer.Typer(help="Build small local models (no model hub needed).", no_args_is_help=True)


@app.command("tiny")
def tiny(
    out: Path = typer.Option(..., "--out", help="directory to write the model to (Hugging Face format)"),
    size: str = typer.Option("tiny", "--size", help="nano | tiny | small | 0.5b (a GPU-sized shape)"),
    tokenizer: str = typer.Option(
        "mistral", "--tokenizer", help="mistral (32k SentencePiece from mistral-common) | task:guess_number | task:lookup | task:maze | task:text_nav"
    ),
    template: str = typer.Option("chatml", "--template", help="chatml | thinking (drops earlier <think> blocks)"),
    tied: bool = typer.Option(False, "--tied/--untied", help="tie the input embeddings and the LM head"),
    seed: int = typer.Option(0, "--seed", help="seed of the random weights"),
) -> None:
    """Write a random-init Qwen2-style chat model that transformers, vLLM and `vllm serve` load."""
    from turngym.agents.tiny import build_tiny_model

    try:
        path = build_tiny_model(out, size=size, tokenizer=tokenizer, template=template, tied=tied, seed=seed)  # type: ignore[arg-type]
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    info = (path / "turngym_tiny.json").read_text()
    typer.echo(f"wrote {path}\n{info}")
