"""The ``lmrl`` suite: LMRL-Gym's eight tasks, each mapped to a registered turngym game, runnable without a
model (the partner games use their rule-based partners); a scripted eval of it through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from turngym.benchmarks.suite import load_suite, suite_names
from turngym.core.registry import env_info

REPO = Path(__file__).resolve().parents[2]
#: LMRL-Gym's task -> the turngym game that plays it (the suite labels its entries with the task)
LMRL = {
    "maze": "turngym/Maze-v0",
    "text-nav": "turngym/TextNav-v0",
    "wordle": "turngym/Wordle-v0",
    "chess": "turngym/Chess-v0",
    "chess-endgames": "turngym/ChessEndgame-v0",
    "twenty-questions": "turngym/TwentyQuestions-v0",
    "guess-my-city": "turngym/GuessMyCity-v0",
    "car-dealer": "turngym/CarDealer-v0",
}


def test_the_suite_maps_the_eight_lmrl_gym_tasks():
    assert "lmrl" in suite_names()
    suite = load_suite("lmrl")
    assert {e.label: e.id for e in suite.envs} == LMRL
    for e in suite.envs:
        assert env_info(e.id).id == e.id and not e.kwargs  # registered; rule-based partners: no model needed
        assert e.id in suite.description


def test_a_scripted_eval_of_the_suite_runs(tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "turngym.cli.app", "eval", "--suite", "lmrl", "--agent", "scripted",
        "--episodes", "1", "--concurrency", "2", "--out", str(out),
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    envs = summary["envs"]
    ran = {name for name, row in envs.items() if row["skipped"] is None}  # the chess games need stockfish
    assert {"car-dealer", "twenty-questions", "guess-my-city", "maze", "text-nav", "wordle"} <= ran
    for name in ran:
        assert envs[name]["episodes"] == 1 and envs[name]["success_rate"] == 1.0
