"""The branch baseline and GiGPO's tree anchors against numbers computed by hand; tree rollouts in training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import turngym
from tests.trainers.test_onpolicy import config
from turngym.benchmarks.store import read_episodes
from turngym.core.config import validate_config
from turngym.core.env import TurnEnv
from turngym.core.errors import ConfigError
from turngym.core.types import Episode, Observation, Turn
from turngym.trainers.advantages import compute_advantages, estimator_config
from turngym.trainers.advantages.gigpo import GiGPOConfig, step_anchors
from turngym.trainers.config import TrainConfig
from turngym.trainers.onpolicy import OnPolicyTrainer
from turngym.trainers.table import TurnTable


def episode(eid: str, rewards: list[float], *, parent: str = "", branch_turn: int | None = None) -> Episode:
    turns = [Turn(index=i, action=f"a{i}", reward=r) for i, r in enumerate(rewards)]
    return Episode(episode_id=eid, group_id="g", env_id="x", instance_hash="h", turns=turns,
                   parent_id=parent, branch_turn=branch_turn)


def tree() -> TurnTable:
    """Root r0 (rewards 0, 0, 1) branched at turn 1 into itself, b1 and b2; root r1 (0, 0.5) not branched.
    Turn 0 of b1 and b2 is their copy of r0's."""
    return TurnTable.from_episodes([
        episode("r0", [0, 0, 1]),
        episode("r0/b1.0", [0, 0, 0, 0], parent="r0", branch_turn=1),
        episode("r0/b1.1", [0, 1], parent="r0", branch_turn=1),
        episode("r1", [0, 0.5]),
    ])


def test_branch_baseline_by_hand():
    table = tree()
    A = compute_advantages(table, estimator_config({"name": "branch_baseline", "k": 3})).turn
    # the branch point (r0, turn 1): returns from turn 1 are r0 1, b1.0 0, b1.1 1, mean 2/3
    # r0: turn 0 before its branch point: R - mean over the roots (1 and 0.5) = 0.25; turns 1-2: 1 - 2/3
    # b1.0: turn 0 is a copy (0); turns 1-3: 0 - 2/3. b1.1: copy 0, turn 1: 1 - 2/3. r1: 0.5 - 0.75
    want = [0.25, 1 / 3, 1 / 3, 0, -2 / 3, -2 / 3, -2 / 3, 0, 1 / 3, -0.25, -0.25]
    np.testing.assert_allclose(A, want, atol=1e-9)
    # norm="std": divided by the std of (1, 0, 1) (ddof 1: sqrt(1/3)) at the branch point; the roots' (1, 0.5):
    # sqrt(0.125)
    A = compute_advantages(table, estimator_config({"name": "branch_baseline", "k": 3, "norm": "std"})).turn
    s3, s2 = math.sqrt(1 / 3), math.sqrt(0.125)
    want = [0.25 / s2, 1 / 3 / s3, 1 / 3 / s3, 0, -2 / 3 / s3, -2 / 3 / s3, -2 / 3 / s3, 0, 1 / 3 / s3, -0.25 / s2,
            -0.25 / s2]
    np.testing.assert_allclose(A, want, rtol=1e-5)
    # prefix="zero": the turns before a branch point (r0's turn 0, and r1, which has none) get nothing
    A = compute_advantages(table, estimator_config({"name": "branch_baseline", "k": 3, "prefix": "zero"})).turn
    np.testing.assert_allclose(A[[0, 9, 10]], 0.0)


def test_gigpo_tree_anchors_by_hand():
    table = tree()
    cfg = GiGPOConfig(norm="mean", gamma=1.0, anchors="tree")
    anchors = step_anchors(table, np.zeros(table.num_turn_rows, dtype=np.int64), cfg)
    # one anchor group of three (the branch point's rows 1, 4 and 8); every other row alone
    assert sorted(np.bincount(anchors).tolist()) == [1] * 8 + [3]
    assert len({anchors[1], anchors[4], anchors[8]}) == 1
    A = compute_advantages(table, cfg).turn
    # A^E = R - mean over the group's 4 episodes (1, 0, 1, 0.5: mean 0.625); A^S at the branch point: G_1 - 2/3
    A_E = np.repeat([0.375, -0.625, 0.375, -0.125], [3, 4, 2, 2])
    A_S = np.zeros(11)
    A_S[[1, 4, 8]] = [1 / 3, -2 / 3, 1 / 3]
    np.testing.assert_allclose(A, A_E + A_S, atol=1e-9)
    # exact text anchors: a branch's copies of its parent's turns join no group (same text, but no sample of theirs)
    exact = step_anchors(table, np.zeros(table.num_turn_rows, dtype=np.int64), GiGPOConfig())
    assert np.bincount(exact)[exact[[3, 7]]].tolist() == [1, 1]


class NoSnapshots(TurnEnv):
    """An env that declares no snapshot support (the base class's default)."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return Observation.text("go"), {}

    def step(self, action):
        return Observation.text("done"), 1.0, True, False, {}


def test_tree_rollout_config_errors(tmp_path, gn_model):
    with pytest.raises(ConfigError, match=r"rollout.branches=3 and algorithm.k=2 disagree"):
        validate_config(TrainConfig, config(tmp_path, gn_model, algorithm={"name": "branch_baseline", "k": 2},
                                            **{"rollout.branches": 3}))
    with pytest.raises(ConfigError, match=r"rollout.branches=2 means nothing to algorithm archer"):
        validate_config(TrainConfig, config(tmp_path, gn_model, algorithm="archer", optim={"lr": 1e-3},
                                            **{"rollout.branches": 2}))
    turngym.register("branchtest/NoSnapshots-v0", NoSnapshots, max_turns=2)
    cfg = TrainConfig(**config(tmp_path, gn_model, algorithm={"name": "branch_baseline", "k": 2},
                               env={"id": "branchtest/NoSnapshots-v0"}))
    with pytest.raises(ConfigError, match=r"algorithm branch_baseline \(k=2\) plays tree rollouts, which restore env "
                                          r"snapshots, and branchtest/NoSnapshots-v0 cannot snapshot: it does not declare"):
        OnPolicyTrainer(cfg).run(progress=False)


def test_branch_baseline_trains_on_tree_rollouts(tmp_path, gn_model):
    cfg = TrainConfig(**config(tmp_path, gn_model, algorithm={"name": "branch_baseline", "k": 3},
                               **{"rollout.group_size": 2, "eval.every": 0}))
    OnPolicyTrainer(cfg).run(progress=False)
    run = Path(cfg.run_dir)
    for k in (1, 2):
        episodes = read_episodes(run / "episodes.jsonl", run_ids=[f"it{k}"])
        roots = [e for e in episodes if not e.parent_id]
        branches = [e for e in episodes if e.parent_id]
        # 2 groups x 2 roots, each branched into 3 continuations: itself and 2 branches (a branch is one episode)
        assert (len(roots), len(branches)) == (4, 8)
        by_id = {e.episode_id: e for e in roots}
        for b in branches:
            parent = by_id[b.parent_id]
            assert b.group_id == parent.group_id and b.instance_hash == parent.instance_hash
            assert 0 <= b.branch_turn < len(parent.turns)
            assert [t.action for t in b.turns[: b.branch_turn]] == [t.action for t in parent.turns[: b.branch_turn]]
    train = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in train if r["kind"] == "train"]
    assert [r["episodes"] for r in train] == [12, 12]
    assert all(math.isfinite(r["update/loss"]) for r in train)
