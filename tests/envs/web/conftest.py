"""Fixtures of the web env tests: Chromium must be there (never skipped in CI), and no Chromium
started by this process may be left when the tests end."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.conftest import require


def chromium_of_this_process() -> list[int]:
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


@pytest.fixture
def browser_required():
    from turngym.core.registry import _browser_missing

    require(_browser_missing() is None, _browser_missing() or "")


@pytest.fixture(scope="session", autouse=True)
def no_chromium_left():
    yield
    deadline = time.monotonic() + 10
    while chromium_of_this_process() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not chromium_of_this_process(), "Chromium left running after the web env tests"
