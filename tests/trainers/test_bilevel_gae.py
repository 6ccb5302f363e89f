"""Bi-level GAE in the training loop (RESEARCH.md 4c): the turn critic (value_head.TurnCritic) learns, its value
loss never reaches the policy, its state is in the checkpoint, and `turngym train` killed and resumed equals an
uninterrupted run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.trainers.test_onpolicy import REPO, RESUME_TOL, _train_records, config
from turngym.trainers.advantages import compute_advantages
from turngym.trainers.config import TrainConfig
from turngym.trainers.onpolicy import OnPolicyTrainer

BILEVEL = {"name": "bilevel_gae", "gamma_turn": 0.95, "critic": {"lr": 1e-2, "steps_per_iteration": 8}}


def test_the_turn_critics_value_loss_falls_and_never_moves_the_policy(tmp_path, gn_model):
    """Two loop iterations log the critic's metrics and checkpoint its head; then critic rounds on one iteration's
    episodes (what each iteration does: values, advantages, value-loss steps) lower its value loss every round,
    and leave the policy's weights as they were."""
    cfg = TrainConfig(**config(tmp_path, gn_model, algorithm=BILEVEL, **{"eval.every": 0}))
    trainer = OnPolicyTrainer(cfg)
    tables = []
    valued = trainer.critic.values

    def spy(model, table, **kwargs):  # the tables the critic valued, in order
        tables.append(table)
        return valued(model, table, **kwargs)

    trainer.critic.values = spy
    trainer.run(progress=False)
    run = Path(cfg.run_dir)
    train = [r for r in _train_records(run) if r["kind"] == "train"]
    assert [r["iteration"] for r in train] == [1, 2]
    for r in train:
        assert r["update/steps"] > 0 and r["probe_diff"] <= cfg.probe_tolerance
        assert r["critic/value_loss_trained"] < r["critic/value_loss"], r  # the steps fit this iteration's returns
    state = torch.load(run / "checkpoints" / "iter-000002" / "trainer.pt", weights_only=False)["algorithm"]["critic"]
    assert torch.equal(state["head"]["proj.weight"], trainer.critic.head.proj.weight) and state["optimizer"]["state"]

    table = tables[-1]  # iteration 2's episodes
    policy = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    losses, explained = [], []
    for _ in range(5):
        values = valued(trainer.model, table)
        adv = compute_advantages(table, cfg.algorithm, values=values)
        metrics = trainer.critic.update(adv)
        losses.append(metrics["critic/value_loss"])
        explained.append(metrics["critic/explained_variance"])
    print("value loss per round:", [round(v, 5) for v in losses], "explained variance:", [round(v, 3) for v in explained])
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    # GuessNumber's returns are mostly the luck of a near-random policy: past the mean, the critic tells states apart
    # (its loss under the best constant's, 0.5 Var(R))
    assert explained[-1] > 0, explained
    for n, p in trainer.model.named_parameters():
        assert torch.equal(p, policy[n]), n


def test_train_bilevel_gae_killed_in_an_update_resumes_to_an_uninterrupted_runs_metrics(tmp_path, gn_model):
    """`turngym train` with bilevel_gae, SIGKILL after the first optimizer step of iteration 2, `--resume`:
    the metrics (the critic's included) and the critic's final state equal an uninterrupted 2-iteration run's."""
    over = {"algorithm": BILEVEL, "iterations": 2, "eval.every": 0}
    whole = OnPolicyTrainer(TrainConfig(**config(tmp_path / "a", gn_model, **over)))
    whole.run(progress=False)

    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path / "b", gn_model, **over)))
    run = tmp_path / "b" / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, str(REPO / "tests" / "trainers" / "kill_worker.py"), str(path), "update", "2"],
                            check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (run / "checkpoints" / "LATEST").read_text() == "iter-000001"
    resumed = subprocess.run([sys.executable, "-m", "turngym.cli.app", "train", "--config", str(path), "--resume"],
                             check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    a, b = _train_records(Path(whole.cfg.run_dir)), _train_records(run)
    assert [(r["kind"], r["iteration"]) for r in a] == [(r["kind"], r["iteration"]) for r in b] == [("train", 1), ("train", 2)]
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys() and "critic/value_loss" in ra
        for key, value in ra.items():
            assert rb[key] == pytest.approx(value, abs=RESUME_TOL) if isinstance(value, float) else rb[key] == value, key
    critic = torch.load(run / "checkpoints" / "iter-000002" / "trainer.pt", weights_only=False)["algorithm"]["critic"]
    for name, tensor in whole.critic.head.state_dict().items():
        assert torch.equal(critic["head"][name], tensor), name
