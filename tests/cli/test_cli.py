"""The turngym command line, run as a user runs it: a subprocess of the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TURNGYM = Path(sys.executable).with_name("turngym")


def turngym(*args: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [str(TURNGYM), *args], input=stdin, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env
    )


def test_envs_list_and_info():
    r = turngym("envs", "list")
    assert r.returncode == 0, r.stderr
    assert "turngym/GuessNumber-v0" in r.stdout and "higher or lower" in r.stdout and "max turns" in r.stdout
    r = turngym("envs", "list", "--all")
    assert r.returncode == 0 and "unavailable because" in r.stdout
    r = turngym("envs", "info", "turngym/GuessNumber-v0")
    assert r.returncode == 0 and "guess_number:GuessNumberEnv" in r.stdout and "can run here" in r.stdout
    r = turngym("envs", "info", "turngym/GuesNumber-v0")
    assert r.returncode == 2 and "Did you mean 'turngym/GuessNumber-v0'" in r.stderr  # a user's mistake: exit 2


def test_envs_check():
    r = turngym("envs", "check", "turngym/GuessNumber-v0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok   turngym/GuessNumber-v0" in r.stdout and "1 env(s) passed" in r.stdout
    r = turngym("envs", "check")
    assert r.returncode == 2 and "--all" in r.stderr


def test_eval_smoke_prints_the_table_and_writes_the_run(tmp_path):
    out = tmp_path / "smoke"
    r = turngym("eval", "--suite", "smoke", "--agent", "scripted", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "smoke / scripted" in r.stdout and "overall" in r.stdout and "95% CI" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    ran = {k: v for k, v in summary["envs"].items() if v["skipped"] is None}
    assert "turngym/GuessNumber-v0" in ran and all(v["errors"] == 0 for v in ran.values())
    assert (out / "report.html").is_file() and (out / "config.yaml").is_file()
    r = turngym("view", str(out))
    assert r.returncode == 0 and r.stdout.strip() == str((out / "report.html").resolve())


def test_eval_set_overrides_and_bad_values(tmp_path):
    out = tmp_path / "run"
    r = turngym("eval", "--suite", "smoke", "--agent", "random", "--out", str(out), "--episodes", "2",
                "--set", "suite.envs=[{id: turngym/GuessNumber-v0}]", "--set", "agent.seed=5")
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = (out / "config.yaml").read_text()
    assert "seed: 5" in cfg and "episodes: 2" in cfg
    assert len((out / "episodes.jsonl").read_text().splitlines()) == 2
    r = turngym("eval", "--suite", "smoke", "--agent", "random", "--set", "concurrency=zero", "--out", str(out))
    assert r.returncode == 2 and "concurrency" in r.stderr and "--set" in r.stderr
    r = turngym("eval", "--suite", "nosuch", "--agent", "random")
    assert r.returncode == 2 and "shipped suites are" in r.stderr and "smoke" in r.stderr


def test_play_with_piped_input():
    r = turngym("play", "turngym/GuessNumber-v0", "--seed", "3", stdin="[50]\nno idea\n[75]\n")
    assert r.returncode == 0, r.stderr
    assert "I am thinking of a whole number" in r.stdout
    assert "The secret is" in r.stdout and "invalid: no guess in square brackets" in r.stdout
    assert "turn 3" in r.stdout and "bye" in r.stdout  # end of input ends cleanly


def test_play_to_the_end():
    import turngym as tg
    from turngym.envs.games.guess_number import expert

    env = tg.make("turngym/GuessNumber-v0")
    obs, _ = env.reset(seed=4)
    policy, moves, done = expert(env.unwrapped), [], False
    while not done:
        moves.append(policy(obs))
        obs, _, term, trunc, _ = env.step(moves[-1])
        done = term or trunc
    r = turngym("play", "turngym/GuessNumber-v0", "--seed", "4", stdin="\n".join(moves) + "\n")
    assert r.returncode == 0 and "is right!" in r.stdout and "episode success" in r.stdout


def test_bench_lists_its_verbs():  # each verb runs in tests/cli/test_bench.py
    r = turngym("bench", "--help")
    assert r.returncode == 0 and "later issue" not in r.stdout
    for verb in ("env", "sandbox", "browser", "rollout"):
        assert verb in r.stdout


def test_train_without_a_config_names_the_missing_option():
    r = turngym("train")
    assert r.returncode == 2 and "--config" in r.stderr


def test_help_lists_every_verb():
    r = turngym("--help")
    assert r.returncode == 0
    for verb in ("envs", "eval", "play", "view", "train", "bench", "sandbox", "models", "quickstart"):
        assert verb in r.stdout


def test_the_cli_imports_no_heavy_module():
    code = (
        "import sys, turngym.cli.app as a; heavy = {'torch', 'docker', 'playwright', 'matplotlib', 'transformers', 'vllm'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_ctrl_c_stops_a_run_of_sync_envs_and_says_how_to_resume(tmp_path):
    import signal
    import time

    suite = tmp_path / "long.yaml"
    suite.write_text("name: long\nepisodes: 100000\nenvs:\n  - id: turngym/GuessNumber-v0\n")
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [str(TURNGYM), "eval", "--suite", str(suite), "--agent", "random", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        # a test run started in the background by a shell without job control inherits SIGINT ignored,
        # and so would the child: give it the default disposition a terminal's process has
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        store = out / "episodes.jsonl"
        deadline = time.monotonic() + 60
        while not (store.exists() and store.read_bytes().count(b"\n") >= 50):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-2000:]
    assert "rerun the same command to resume" in err
    assert store.read_bytes().count(b"\n") < 100000
