"""`turngym train -c FILE` on the user mistakes of a YAML or a --set: each ends before any model loads with
one paragraph naming the value, the cause and the fix, exit code 2, and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def good_config(tmp_path: Path) -> dict:
    model = tmp_path / "model"  # check_inputs only asks for a directory: the mistakes end before it loads
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    return {
        "run_dir": str(tmp_path / "run"),
        "env": {"id": "turngym/GuessNumber-v0", "kwargs": {"low": 1, "high": 16}, "max_turns": 6},
        "model": {"path": str(model)},
        "algorithm": "flow_grpo",
        "iterations": 1,
    }


def train(tmp_path: Path, cfg: dict, *overrides: str) -> subprocess.CompletedProcess:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    args = [sys.executable, "-m", "turngym.cli.app", "train", "-c", str(path)]
    for o in overrides:
        args += ["--set", o]
    env = {**os.environ, "COLUMNS": "400"}
    return subprocess.run(args, capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


def assert_user_error(r: subprocess.CompletedProcess, *names: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    message = " ".join(r.stderr.split())
    assert message.startswith("error: "), message
    for name in names:
        assert name in message, (name, message)
    assert not (Path(r.args[4]).parent / "run").exists(), "the run directory was created before the check"
    return message


def test_unknown_key_names_the_key_and_the_close_one(tmp_path):
    cfg = good_config(tmp_path)
    cfg["optim"] = {"lrr": 1e-3}
    msg = assert_user_error(train(tmp_path, cfg), "optim.lrr", "no such setting", "Did you mean 'lr'?")
    assert "--set" in msg


def test_unknown_algorithm_option_from_set_is_named_without_the_union_tag(tmp_path):
    r = train(tmp_path, good_config(tmp_path), "algorithm=gigpo", "algorithm.omgea=0.5")
    assert_user_error(r, "algorithm.omgea", "Did you mean 'omega'?")


def test_wrong_type_names_the_key_and_the_value(tmp_path):
    r = train(tmp_path, good_config(tmp_path), "optim.lr=fast")
    assert_user_error(r, "optim.lr", "'fast'", "valid number")


def test_unknown_algorithm_lists_the_algorithms(tmp_path):
    cfg = {**good_config(tmp_path), "algorithm": "flow_gpro"}
    msg = assert_user_error(train(tmp_path, cfg), "unknown algorithm 'flow_gpro'", "Did you mean 'flow_grpo'?")
    assert "grpo, rloo, flow_grpo, mt_grpo, gigpo, bilevel_gae, branch_baseline, archer" in msg


def test_missing_model_path(tmp_path):
    r = train(tmp_path, good_config(tmp_path), f"model.path={tmp_path / 'no-such-model'}")
    assert_user_error(r, f"model.path='{tmp_path / 'no-such-model'}'", "does not exist", "turngym models tiny")


def test_unknown_env_id(tmp_path):
    r = train(tmp_path, good_config(tmp_path), "env.id=turngym/GuesNumber-v0")
    assert_user_error(r, "'turngym/GuesNumber-v0'", "Did you mean 'turngym/GuessNumber-v0'", "env.id")


def test_the_old_archer_section_says_where_its_options_went(tmp_path):
    cfg = {**good_config(tmp_path), "algorithm": "archer", "archer": {"warmup_iterations": 0}}
    assert_user_error(train(tmp_path, cfg), "archer:", "algorithm: {name: archer")


def test_an_on_policy_optim_key_with_archer_points_at_archers_own_options(tmp_path):
    cfg = {**good_config(tmp_path), "algorithm": "archer"}
    r = train(tmp_path, cfg, "optim.epochs=3")
    assert_user_error(r, "optim.epochs=3", "means nothing to algorithm archer", "algorithm", "batch_size",
                      "critic.steps_per_iteration")


def test_train_help_lists_every_algorithm():
    from turngym.trainers.config import ALGORITHMS

    r = subprocess.run([sys.executable, "-m", "turngym.cli.app", "train", "--help"], capture_output=True, text=True,
                       cwd=REPO, env={**os.environ, "COLUMNS": "400"}, timeout=60)
    assert r.returncode == 0
    assert f"({', '.join(ALGORITHMS)})" in r.stdout


def test_quickstart_names_a_bad_set_before_it_builds_its_model(tmp_path):
    args = [sys.executable, "-m", "turngym.cli.app", "quickstart", "--out", str(tmp_path / "qs"), "--set", "algorithm=gigp"]
    r = subprocess.run(args, capture_output=True, text=True, cwd=REPO, env={**os.environ, "COLUMNS": "400"}, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "unknown algorithm 'gigp'. Did you mean 'gigpo'?" in " ".join(r.stderr.split())
    assert not (tmp_path / "qs").exists()
