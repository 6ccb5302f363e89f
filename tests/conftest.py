"""Shared test helpers. In CI (CI=true) a missing real part (Docker, Chromium, vLLM) fails the test
instead of skipping it: those tests must run for real."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(ok: bool, reason: str) -> None:
    """Skip locally, fail in CI, when a real part the test needs is missing."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def chromium_of_this_process() -> list[int]:
    """PIDs of the Chromium processes this test process started that are still running."""
    marker = f"--turngym-owner={os.getpid()}-".encode()
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            state = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmd and state != "Z":
            out.append(int(entry.name))
    return out
