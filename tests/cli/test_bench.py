"""``turngym bench ...`` run as a user runs it (a subprocess), with small sizes. The sandbox and browser
benches need Docker and Chromium: they run for real in CI (``require`` fails there instead of skipping)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require

REPO = Path(__file__).resolve().parents[2]
TURNGYM = Path(sys.executable).with_name("turngym")


def turngym(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(TURNGYM), "bench", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def as_json(r: subprocess.CompletedProcess) -> dict:
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def test_bench_env_prints_latencies_and_steps_per_second():
    r = turngym("env", "turngym/GuessNumber-v0", "--episodes", "5", "--seed", "3")
    assert r.returncode == 0, r.stderr
    for row in ("reset p50", "reset p95", "step p50", "step p95", "steps per second", "success rate"):
        assert row in r.stdout, row
    out = as_json(turngym("env", "turngym/GuessNumber-v0", "--episodes", "5", "--seed", "3", "--json"))
    assert out["bench"] == "env"
    assert out["params"] == {"env": "turngym/GuessNumber-v0", "episodes": 5, "seed": 3, "agent": "scripted"}
    m = out["metrics"]
    assert m["steps"] >= 5 and m["steps_per_s"] > 0 and m["success_rate"] == 1.0  # the expert wins every game
    assert 0 < m["reset_p50_ms"] <= m["reset_p95_ms"] and 0 < m["step_p50_ms"] <= m["step_p95_ms"]


def test_bench_env_with_the_random_agent():
    out = as_json(turngym("env", "turngym/Wordle-v0", "--episodes", "2", "--agent", "random", "--json"))
    assert out["params"]["agent"] == "random" and out["metrics"]["steps"] >= 2


def test_bench_rollout_with_the_scripted_agent():
    r = turngym("rollout", "--agent", "scripted", "--env", "turngym/GuessNumber-v0", "--episodes", "6",
                "--concurrency", "3")
    assert r.returncode == 0, r.stderr
    assert "episodes per second" in r.stdout and "tokens per second" in r.stdout
    out = as_json(turngym("rollout", "--agent", "scripted", "--env", "turngym/GuessNumber-v0", "--episodes", "6",
                          "--max-turns", "2", "--json"))
    m = out["metrics"]
    assert out["params"]["max_turns"] == 2 and m["errors"] == 0
    assert 6 <= m["turns"] <= 12 and m["episodes_per_s"] > 0 and m["tokens"] == 0  # no model, no sampled tokens


@pytest.mark.parametrize(
    "args, message",
    [
        (("env", "turngym/GuesNumber-v0"), "Did you mean 'turngym/GuessNumber-v0'"),
        (("rollout", "--agent", "nosuch", "--env", "turngym/GuessNumber-v0"), "unknown agent spec 'nosuch'"),
        (("env", "turngym/GuessNumber-v0", "--episodes", "0"), "--episodes"),
    ],
)
def test_a_mistake_exits_2_with_the_value_named(args, message):
    r = turngym(*args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_no_docker_engine_is_one_paragraph_and_exit_2():
    r = turngym("sandbox", "--samples", "1", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "needs a Docker engine" in r.stderr and "scripts/setup.sh" in r.stderr
    assert r.stderr.strip().count("\n\n") == 0


def test_no_chromium_is_one_paragraph_and_exit_2():
    r = turngym("browser", "--episodes", "1", env={"PATH": str(TURNGYM.parent)})  # no /usr/bin: no chromium
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "needs Chromium" in r.stderr and "apt-get install chromium" in r.stderr


@pytest.mark.docker
def test_bench_sandbox_times_create_exec_and_reset():
    from tests.sandboxes.conftest import docker_ready

    reason = docker_ready()
    require(reason is None, reason or "")
    proc = subprocess.Popen([str(TURNGYM), "bench", "sandbox", "--samples", "3", "--creates", "1", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    m = json.loads(stdout)["metrics"]
    for name in ("create", "exec", "reset"):
        assert 0 < m[f"{name}_p50_ms"] <= m[f"{name}_p95_ms"], name
    from turngym.sandboxes.reaper import list_sandboxes

    assert [r.name for r in list_sandboxes() if r.owner_pid == str(proc.pid)] == []  # every container removed


@pytest.mark.browser
def test_bench_browser_times_a_page_and_a_step():
    from turngym.benchmarks.bench import require_browser
    from turngym.core.errors import EnvUnavailable

    try:
        require_browser()
        missing = None
    except EnvUnavailable as e:
        missing = str(e)
    require(missing is None, missing or "")
    out = as_json(turngym("browser", "--episodes", "1", "--steps", "2", "--task", "enter-text", "--json"))
    m = out["metrics"]
    assert out["params"]["tasks"] == ["enter-text"]
    assert 0 < m["reset_p50_ms"] <= m["reset_p95_ms"] and 0 < m["step_p50_ms"] <= m["step_p95_ms"]
