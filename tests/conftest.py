"""Shared test helpers. In CI (CI=true) a missing real part (Docker, Chromium, vLLM) fails the test
instead of skipping it: those tests must run for real."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(ok: bool, reason: str) -> None:
    """Skip locally, fail in CI, when a real part the test needs is missing."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)
