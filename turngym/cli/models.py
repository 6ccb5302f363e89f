"""`turngym models ...` subcommands (a sub-app mounted by turngym/cli/app.py)."""

import typer

app = typer.Typer(help="models commands", no_args_is_help=True)
