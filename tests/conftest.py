"""Shared test helpers. In CI (CI=true) a missing real part (Docker, Chromium, vLLM) fails the test
instead of skipping it: those tests must run for real."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parents[1]


def require(ok: bool, reason: str) -> None:
    """Skip locally, fail in CI, when a real part the test needs is missing."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def run_in_venv(
    venv: str, script: Path, *args: object, setup: str, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` under the python of the repository's virtualenv ``venv`` (``.venv-vllm``, ``.venv-trl``: the
    packages that pin their own versions and so stay out of .venv) from the repository root, with a bare
    environment: PATH, HOME under .cache, one OpenMP thread, plus ``env``. Skips locally, fails in CI, where the
    virtualenv is missing; ``setup`` is the set-up step that makes it."""
    python = REPO / venv / "bin" / "python"
    require(python.exists(), f"the virtualenv {venv} is missing: run bash {setup}")
    return subprocess.run(
        [str(python), str(script), *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(REPO / ".cache"), "OMP_NUM_THREADS": "1", **(env or {})},
    )


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
