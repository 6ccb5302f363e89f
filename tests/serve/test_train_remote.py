"""`turngym train` on a served env, unchanged: the shipped GRPO example with its env id set to a `remote/` URL
(the env's own keyword arguments given to the server), 2 iterations with the nano model."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.agents.conftest import tiny_model
from tests.serve.conftest import TURNGYM, health, served
from tests.trainers.test_algorithms import EXAMPLES

pytestmark = pytest.mark.slow


def test_train_on_a_remote_env(tmp_path):
    model = tiny_model("gn-nano", size="nano", tokenizer="task:guess_number", init_std=0.02)
    with served("turngym/GuessNumber-v0", "--kwargs", '{"low": 1, "high": 16, "terse": true}') as srv:
        sets = {
            "env.id": srv.remote,
            "env.kwargs": "{}",
            "model.path": str(model),
            "iterations": "2",
            "rollout.groups": "2",
            "rollout.group_size": "4",
            "eval.every": "2",
            "eval.seeds": "4",
            "checkpoint.every": "2",
            "run_dir": str(tmp_path / "run"),
        }
        out = subprocess.run(
            [str(TURNGYM), "train", "--config", str(EXAMPLES / "grpo.yaml")]
            + [arg for k, v in sets.items() for arg in ("--set", f"{k}={v}")],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert health(srv.url)["envs_open"] == 0  # the trainer's rollout envs closed their sessions
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in metrics if "iteration" in m][-1] == 2
    episodes = (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()
    assert len(episodes) >= 16 and all('"error"' not in line for line in episodes)
