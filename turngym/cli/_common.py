"""What every verb of the CLI shares: the two consoles and how an error ends a command.

Exit codes: 0 done; 1 the run failed (an env, a sandbox, a backend); 2 what the user gave cannot work
as given (an option, a config or suite file, an env id: :class:`ConfigError`, :class:`RegistryError`;
an env this machine cannot run, e.g. without Docker: :class:`EnvUnavailable`); 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from turngym.core.errors import ConfigError, EnvUnavailable, RegistryError

#: the exit code of a mistake in what the user gave (an option, a YAML, a ``--set``, an env id)
USAGE = 2
#: the errors that mean the user's input (or machine) must change, not the run
USER_ERRORS = (ConfigError, RegistryError, EnvUnavailable)
#: the exit code of an interrupted run (Ctrl-C), as a shell reports SIGINT
INTERRUPTED = 130


def _width(stream: Any) -> int | None:
    """The terminal's width, or 120 columns when output goes to a pipe or file (logs, CI)."""
    return None if stream.isatty() or "COLUMNS" in os.environ else 120


console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on stderr and return the ``typer.Exit`` to raise (``raise fail(...) from None``)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def fail_on(error: BaseException) -> typer.Exit:
    """:func:`fail` for a turngym error: exit 2 for :data:`USER_ERRORS`, 1 otherwise."""
    return fail(str(error), code=USAGE if isinstance(error, USER_ERRORS) else 1)
