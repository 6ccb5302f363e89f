"""``turngym init NAME [--out DIR]``: a package of one's own envs, ready to install, check and evaluate.

    turngym init my-envs                    # ./my-envs: pyproject.toml, my_envs/envs.py, suites/, tests/
    cd my-envs && pip install -e . && turngym envs check my_envs/AddUp-v0
    turngym eval --suite suites/my_envs.yaml --agent scripted

The package (templates in ``turngym/cli/templates/init``): ``pyproject.toml`` with the ``turngym.envs``
entry point, ``NAME/envs.py`` with one small env (``AddUp``) and its scripted expert, a suite YAML and a
pytest test. ``turngym envs check`` passes on it as generated. :func:`scaffold` is the same from Python.
"""

from __future__ import annotations

import keyword
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from turngym.cli._common import USAGE, console, fail
from turngym.core.errors import ConfigError

TEMPLATES = Path(__file__).parent / "templates" / "init"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
#: names that would shadow what the generated package imports
_TAKEN = {"turngym", "gymnasium", "numpy", "pydantic", "pytest", "test", "tests"}


def package_name(name: str) -> str:
    """The Python package of distribution ``name`` (``my-envs`` -> ``my_envs``); ``ConfigError`` if none fits."""
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"NAME {name!r} is not a package name: it must start with a letter and hold only letters, digits, "
            "'_' and '-' (e.g. my-envs, which gives the Python package my_envs)"
        )
    pkg = name.lower().replace("-", "_")
    if keyword.iskeyword(pkg) or pkg in sys.stdlib_module_names or pkg in _TAKEN:
        raise ConfigError(
            f"NAME {name!r} gives the Python package {pkg!r}, which is a keyword or the name of a module it would "
            f"shadow; pick another name (e.g. {pkg}_envs)"
        )
    return pkg


def scaffold(name: str, out: Path | None = None) -> list[Path]:
    """Write the package for ``name`` into ``out`` (default ``./NAME``); the files written.

    ``ConfigError`` if ``name`` is not a package name or ``out`` exists and is not an empty directory."""
    pkg = package_name(name)
    out = Path(out) if out is not None else Path(name)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(
            f"{out} already exists and is not an empty directory: turngym init never overwrites files; "
            "pass --out with a new (or empty) directory"
        )
    values = {"{{dist}}": name, "{{pkg}}": pkg, "{{turngym_version}}": _turngym_version()}
    written = []
    for src in sorted(TEMPLATES.rglob("*.tmpl")):
        rel = src.relative_to(TEMPLATES).with_suffix("")  # drop .tmpl
        parts = [pkg if p == "pkg" else p for p in rel.parts]
        if parts == ["suites", "suite.yaml"]:
            parts = ["suites", f"{pkg}.yaml"]
        text = src.read_text()
        for key, value in values.items():
            text = text.replace(key, value)
        dest = out.joinpath(*parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
        written.append(dest)
    return written


def _turngym_version() -> str:
    from turngym import __version__

    return __version__


def init(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The distribution name, e.g. my-envs.")],
    out: Annotated[Path | None, typer.Option("--out", help="The directory to write (default ./NAME).")] = None,
) -> None:
    """Write a package of your own envs: one env with its expert, the turngym.envs entry point, a suite, a test."""
    try:
        written = scaffold(name, out)
    except ConfigError as e:
        raise fail(str(e), code=USAGE) from None
    root = out if out is not None else Path(name)
    pkg = package_name(name)
    for path in written:
        console.print(f"wrote {path}", highlight=False)
    console.print(
        f"\nNext:\n  cd {root}\n  pip install -e .\n  turngym envs check {pkg}/AddUp-v0\n"
        f"  turngym eval --suite suites/{pkg}.yaml --agent scripted\n  pytest tests",
        highlight=False,
    )
