"""Rollouts overlapping training (``rollout.overlap: 1``): the staleness recorded per episode and in the metrics,
truncated importance sampling applied to stale episodes (by hand, and in an update), the policy version in the turn
table, and an overlapped run that resumes exactly."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trainers.builders import episode
from tests.trainers.test_onpolicy import config
from turngym.benchmarks.store import read_episodes
from turngym.trainers.advantages import compute_advantages, estimator_config
from turngym.trainers.config import LossConfig, OptimConfig, TrainConfig
from turngym.trainers.losses import policy_loss, ppo_clip, truncated_is_weights
from turngym.trainers.onpolicy import OnPolicyTrainer
from turngym.trainers.table import TurnTable, read_parquet, write_parquet


def test_truncated_is_weights_by_hand():
    prox = torch.tensor([[0.0, -1.0, -0.5]])
    sampler = torch.tensor([[-1.0, 0.0, -0.5]])
    w = truncated_is_weights(prox, sampler, cap=2.0)
    assert torch.allclose(w, torch.tensor([[2.0, math.exp(-1.0), 1.0]]))  # e^1 = 2.72 is cut at C = 2
    assert not w.requires_grad


def test_policy_loss_weights_each_tokens_clipped_term():
    logp = torch.tensor([[-0.9, -1.1, -0.3]], requires_grad=True)
    old = torch.tensor([[-1.0, -1.0, -0.5]])
    adv = torch.tensor([[1.0, -1.0, 0.5]])
    mask = torch.tensor([[1, 1, 0]])
    w = torch.tensor([[2.0, 0.5, 3.0]])
    loss, stats = policy_loss(logp, old, adv, mask, cfg=LossConfig(aggregation="token_mean", tis_cap=2.0),
                              is_weights=w)
    by_hand = (ppo_clip(logp, old, adv)[0, :2] * w[0, :2]).mean()
    assert torch.allclose(loss, by_hand)
    assert float(stats["is_weight_mean"]) == pytest.approx(1.25)
    assert float(stats["is_weight_capped"]) == pytest.approx(0.5)
    plain, _ = policy_loss(logp, old, adv, mask, cfg=LossConfig(aggregation="token_mean"))
    assert not torch.allclose(loss, plain)


def _model_logprob_episodes(model, n: int = 4) -> list:
    """Hand-made episodes whose recorded logprobs are the model's own (a fresh sampler), rewards 0/1."""
    from turngym.trainers.table import collate_episodes
    from turngym.trainers.update import sequence_logprobs

    eps = [episode(f"e{i}", "g0", [float(i % 2)], action_lens=[3], base=5 + 7 * i) for i in range(n)]
    table = TurnTable.from_episodes(eps)
    b = collate_episodes(table, np.arange(n), device="cpu", pad_id=0)
    with torch.no_grad():
        logp = sequence_logprobs(model, b)[0]
    for i, ep in enumerate(eps):  # logp[i, k] = log p(token k | tokens < k) on action tokens, 0 elsewhere
        ep.logprobs = [float(x) for x in logp[i, : len(ep.tokens)]]
    return eps


def test_a_stale_episodes_importance_weights_are_applied_in_the_update(gn_model):
    from transformers import AutoModelForCausalLM

    from turngym.trainers.update import policy_update

    def run(eps, truncated_is):
        model = AutoModelForCausalLM.from_pretrained(str(gn_model), dtype=torch.float32).eval()
        table = TurnTable.from_episodes(eps)
        adv = compute_advantages(table, estimator_config("grpo"))
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        stats = policy_update(model, opt, table, adv, optim=OptimConfig(lr=1.0, grad_clip=0),
                              loss=LossConfig(aggregation="token_mean", tis_cap=2.0),
                              generator=torch.Generator().manual_seed(0), truncated_is=truncated_is)
        return torch.cat([p.detach().flatten() for p in model.parameters()]), stats

    model = AutoModelForCausalLM.from_pretrained(str(gn_model), dtype=torch.float32).eval()
    fresh = _model_logprob_episodes(model)
    params_plain, _ = run(fresh, None)
    params_fresh, stats = run(fresh, 2.0)
    # samples of the policy itself: every weight is 1, and the update is the plain one
    assert stats["is_weight_mean"] == pytest.approx(1.0, abs=1e-5) and stats["is_weight_capped"] == 0.0
    assert torch.allclose(params_fresh, params_plain, atol=1e-6)
    # episode e1 sampled by an older policy that gave its action tokens a third of today's probability
    stale = [e.model_copy(deep=True) for e in fresh]
    stale[1].logprobs = [x - math.log(3.0) if m else x for x, m in zip(stale[1].logprobs, stale[1].mask, strict=True)]
    params_stale, stats = run(stale, 2.0)
    tokens = sum(sum(e.mask) for e in stale)
    assert stats["is_weight_capped"] == pytest.approx(3 / tokens)  # e1's 3 action tokens: w = min(3, 2)
    assert stats["is_weight_mean"] == pytest.approx((tokens - 3 + 3 * 2.0) / tokens, rel=1e-4)
    assert not torch.allclose(params_stale, params_plain, atol=1e-6)


def test_the_turn_table_keeps_each_episodes_policy_version(tmp_path):
    eps = [episode("a", "g", [1.0]), episode("b", "g", [0.0])]
    eps[0].policy_version = 3
    table = TurnTable.from_episodes(eps)
    assert table.policy_version.tolist() == [3, -1]
    assert table.select([1, 0]).policy_version.tolist() == [-1, 3]
    path = write_parquet(table, tmp_path / "t.parquet")
    assert read_parquet(path).policy_version.tolist() == [3, -1]


def test_overlap_is_refused_for_archer_naming_the_fix(tmp_path, gn_model):
    with pytest.raises(ValueError, match="rollout.overlap=1: algorithm archer is off-policy already"):
        TrainConfig(**config(tmp_path, gn_model, algorithm="archer", optim={"lr": 1e-3}, loss={},
                             **{"rollout.overlap": 1}))


def _train(tmp_path: Path, gn_model: Path, *, resume: bool = False) -> Path:
    over = {"rollout.overlap": 1, "iterations": 3, "eval.every": 0, "checkpoint.keep": 3}
    OnPolicyTrainer(TrainConfig(**config(tmp_path, gn_model, **over))).run(resume=resume, progress=False)
    return tmp_path / "run"


def _weights(run: Path) -> torch.Tensor:
    from safetensors.torch import load_file

    state = load_file(str(run / "checkpoints" / "iter-000003" / "model" / "model.safetensors"))
    return torch.cat([state[k].flatten() for k in sorted(state)])


def test_an_overlapped_run_records_its_staleness_and_resumes_exactly(tmp_path, gn_model):
    run = _train(tmp_path, gn_model)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["staleness"] for r in train] == [0.0, 1.0, 1.0]
    assert all("update/is_weight_mean" in r for r in train if r["kept_episodes"])
    episodes = read_episodes(run / "episodes.jsonl")
    assert {(e.run_id, e.policy_version) for e in episodes} == {("it1", 0), ("it2", 0), ("it3", 1)}
    # killed after iteration 2's checkpoint (which holds iteration 3's episodes, sampled during its update)
    whole = _weights(run)
    it3 = {e.episode_id: e.tokens for e in episodes if e.run_id == "it3"}
    shutil.rmtree(run / "checkpoints" / "iter-000003")
    (run / "checkpoints" / "LATEST").write_text("iter-000002")
    _train(tmp_path, gn_model, resume=True)
    again = {e.episode_id: e.tokens for e in read_episodes(run / "episodes.jsonl") if e.run_id == "it3"}
    assert again == it3
    assert torch.equal(_weights(run), whole)
