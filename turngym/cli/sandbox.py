"""`turngym sandbox ...` subcommands (a sub-app mounted by turngym/cli/app.py)."""

import typer

app = typer.Typer(help="sandbox commands", no_args_is_help=True)
