"""The ``turngym`` command line (typer + rich): one module per verb, assembled here.

    turngym envs list [--all]            turngym envs info ID           turngym envs check ID|--all
    turngym eval --suite smoke|--env ID --agent scripted [--episodes N] [--out DIR] [--set k=v] [--ray [ADDRESS]]
    turngym play ID [--seed N]           turngym view RUN_DIR           turngym compare RUN_A RUN_B
    turngym train -c run.yaml [--set k=v] [--resume]                    turngym quickstart
    turngym serve ID [ID ...] [--port P] [--docker]                     turngym init NAME
    turngym export episodes RUN --format hf|sft|dpo|tokens
    turngym sandbox ...                  turngym models ...
    turngym bench env ID | sandbox | browser | rollout --agent SPEC --env ID

Heavy modules (torch, matplotlib, agents, Docker, Playwright) are imported inside the commands that need
them, so ``turngym envs list`` starts fast. Exit codes: 0 done, 1 the run failed, 2 a mistake in the
user's input (option, config, ``--set``, env id) or an env this machine cannot run, 130 interrupted
(see :mod:`turngym.cli._common`). A command that needs vLLM started from a Python without it re-executes
under the vLLM virtualenv (:mod:`turngym.cli._vllm_venv`).
"""

from __future__ import annotations

import sys

import typer

from turngym.cli._vllm_venv import reexec_under_vllm
from turngym.cli.bench import app as bench_app
from turngym.cli.compare import compare
from turngym.cli.envs import app as envs_app
from turngym.cli.eval import eval_
from turngym.cli.export import app as export_app
from turngym.cli.init import init
from turngym.cli.models import app as models_app
from turngym.cli.play import play
from turngym.cli.quickstart import quickstart
from turngym.cli.sandbox import app as sandbox_app
from turngym.cli.serve import serve
from turngym.cli.train import train
from turngym.cli.view import view

app = typer.Typer(
    name="turngym",
    help="A gym for LLM agents that act over many turns: environments, evaluation, training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(envs_app, name="envs")
app.command("eval")(eval_)
app.command("play")(play)
app.command("view")(view)
app.command("compare")(compare)
app.command("train")(train)
app.command("quickstart")(quickstart)
app.command("serve")(serve)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(models_app, name="models")
app.add_typer(export_app, name="export")
app.add_typer(bench_app, name="bench")
app.command("init")(init)


#: options whose value may be left out (typer has no optional values): the value they then take
OPTIONAL_VALUES = {"--ray": "local"}


def optional_values(argv: list[str]) -> list[str]:
    """``argv`` with the default value put after an option of ``OPTIONAL_VALUES`` given bare (at the end, or
    before another option): ``eval --ray --workers 4`` reads as ``eval --ray local --workers 4``."""
    out = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg == "--":
            return out + argv[i + 1 :]
        if arg in OPTIONAL_VALUES and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out.append(OPTIONAL_VALUES[arg])
    return out


def main() -> None:
    reexec_under_vllm(sys.argv[1:])  # a vllm command from a Python without vLLM runs under .venv-vllm
    app(args=optional_values(sys.argv[1:]))


if __name__ == "__main__":
    main()
