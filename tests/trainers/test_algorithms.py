"""Every algorithm from its shipped example YAML (turngym/trainers/configs/examples/NAME.yaml) through `turngym
train`: 2 iterations write the same run-directory layout; a run killed with SIGKILL in iteration 2 (after its
first optimizer step, checkpoint 1 on disk) and resumed with --resume ends with the uninterrupted run's metrics
and episodes, none stored twice; `turngym view RUN` prints its report.

The killed run and its resumption are processes of their own (kill -9 leaves nothing behind but the files);
the uninterrupted run and view are the same CLI commands invoked in the test's process (typer's CliRunner),
which saves each case a process start (~4 s of imports) and holds the resumed run to the metrics of another
process."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest

from tests.trainers.test_onpolicy import REPO, RESUME_TOL, _train_records
from turngym.trainers.config import ALGORITHMS
from turngym.trainers.train import train_config

EXAMPLES = Path(str(files("turngym.trainers") / "configs" / "examples"))

#: a few seconds of compute a run: 2 iterations of 2 groups x 4 episodes, eval on 2 seeds after each
SMALL = ["iterations=2", "rollout.groups=2", "rollout.group_size=4", "eval.every=1", "eval.seeds=2",
         "checkpoint.every=1"]
#: the algorithms' own options, cut down the same way
TINY = {
    "bilevel_gae": ["algorithm.critic.steps_per_iteration=2"],
    "archer": ["algorithm.warmup_iterations=0", "algorithm.batch_size=4",
               "algorithm.micro_batch_size=4", "algorithm.critic.steps_per_iteration=2",
               "algorithm.actor.steps_per_iteration=1"],
}

#: what every run directory holds, and every checkpoint
LAYOUT = {"config.yaml", "metrics.jsonl", "episodes.jsonl", "report.html", "curve.png", "tb", "checkpoints"}
CHECKPOINT = {"model", "trainer.pt"}
#: the algorithm's own checkpoint files (ArCHer: the replay buffer's position, RNG and episode references)
EXTRA = {"archer": {"replay.jsonl", "archer.json"}}


def test_every_algorithm_has_an_example():
    assert sorted(p.stem for p in EXAMPLES.glob("*.yaml")) == sorted(ALGORITHMS)
    for name in ALGORITHMS:
        cfg = train_config(EXAMPLES / f"{name}.yaml")
        assert cfg.algorithm_name == name and cfg.env is not None and cfg.env.id == "turngym/GuessNumber-v0"


_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _settings(name: str, model: Path, run: Path) -> list[str]:
    return [*SMALL, *TINY.get(name, []), f"model.path={model}", f"run_dir={run}"]


def _train_args(name: str, settings: list[str]) -> list[str]:
    return ["train", "--config", str(EXAMPLES / f"{name}.yaml"), *(a for s in settings for a in ("--set", s))]


def _cli(*args: str):
    """`turngym ARGS` in this process."""
    from typer.testing import CliRunner

    from turngym.cli.app import app

    return CliRunner(env={"DISPLAY": None, "WAYLAND_DISPLAY": None}).invoke(app, list(args))


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= RESUME_TOL
    return a == b


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_train_from_the_example_kill_9_resume_and_view(tmp_path, gn_model, name):
    # (a) uninterrupted: the layout every algorithm writes
    whole = tmp_path / "whole"
    done = _cli(*_train_args(name, _settings(name, gn_model, whole)))
    assert done.exit_code == 0, (done.output[-3000:], done.exception)
    assert {p.name for p in whole.iterdir()} == LAYOUT
    assert {p.name for p in (whole / "checkpoints").iterdir()} == {"LATEST", "iter-000001", "iter-000002"}
    for k in (1, 2):
        ckpt = whole / "checkpoints" / f"iter-{k:06d}"
        assert {p.name for p in ckpt.iterdir()} == CHECKPOINT | EXTRA.get(name, set())
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (ckpt / "model").iterdir()}
    assert train_config(whole / "config.yaml").algorithm == train_config(EXAMPLES / f"{name}.yaml",
                                                                         TINY.get(name, [])).algorithm
    a = _train_records(whole)
    assert [(r["kind"], r["iteration"]) for r in a] == [("eval", 0), ("train", 1), ("eval", 1), ("train", 2), ("eval", 2)]

    # (b) SIGKILL after iteration 2's first optimizer step, then --resume
    run = tmp_path / "killed"
    settings = _settings(name, gn_model, run)
    killed = subprocess.run([sys.executable, str(REPO / "tests" / "trainers" / "kill_worker.py"),
                             str(EXAMPLES / f"{name}.yaml"), "update", "2", *settings],
                            check=False, cwd=REPO, env=_ENV, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, f"not killed in iteration 2 (no optimizer step?): {killed.stderr[-2000:]}"
    assert (run / "checkpoints" / "LATEST").read_text() == "iter-000001"
    assert [r["iteration"] for r in _train_records(run) if r["kind"] == "train"] == [1]
    resumed = subprocess.run([sys.executable, "-m", "turngym.cli.app", *_train_args(name, settings), "--resume"],
                             check=False, cwd=REPO, env=_ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    b = _train_records(run)
    assert [(r["kind"], r["iteration"]) for r in b] == [(r["kind"], r["iteration"]) for r in a]
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        differ = {k: (v, rb[k]) for k, v in ra.items() if not _same(v, rb[k])}
        assert not differ, (ra["kind"], ra["iteration"], differ)
    stored = [json.loads(x) for x in (run / "episodes.jsonl").read_text().splitlines()]
    ids = [(r["run_id"], r["episode_id"]) for r in stored]  # every line: none stored twice
    assert len(ids) == len(set(ids))
    assert [r["run_id"] for r in stored] == [
        json.loads(x)["run_id"] for x in (whole / "episodes.jsonl").read_text().splitlines()]  # and none lost

    # (c) turngym view
    view = _cli("view", str(run))
    assert view.exit_code == 0, view.output[-2000:]
    report = Path(view.stdout.strip())
    assert report == (run / "report.html").resolve() and report.is_file()
