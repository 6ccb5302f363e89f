"""Helpers of the text-world tests: the engines must be here (skip locally, fail in CI) and the JVMs
a process owns."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import require


@pytest.fixture(autouse=True)
def _engines_present() -> None:
    require(shutil.which("java") is not None, "no Java runtime: apt-get install openjdk-17-jre-headless")
    for module in ("scienceworld", "textworld_express", "py4j", "textworld", "jericho"):
        require(importlib.util.find_spec(module) is not None, f"{module} is missing: pip install 'turngym[textworlds]'")


def java_children(pid: int | None = None) -> list[int]:
    """The live (not zombie) java processes whose parent is ``pid`` (this process by default)."""
    parent = str(pid or os.getpid())
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if stat[1] == parent and stat[0] != "Z" and cmd.endswith(b"java"):
            out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
