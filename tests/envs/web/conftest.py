"""Fixtures of the web env tests: Chromium must be there (never skipped in CI), and no Chromium
started by this process may be left when the tests end."""

from __future__ import annotations

import time

import pytest

from tests.conftest import chromium_of_this_process, require


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
