"""Losses: clip on both sides, k3 by hand, the three aggregations, gradients only on action tokens."""

from __future__ import annotations

import math

import pytest
import torch

from turngym.trainers.value_head import ValueHead, value_loss
from turngym.trainers.losses import (
    AGGREGATIONS,
    LossConfig,
    frozen_reference,
    kl_k3,
    policy_loss,
    ppo_clip,
    token_entropy,
    token_logprobs,
)


def _loss_and_grad(rho: float, A: float) -> tuple[float, float]:
    logp = torch.tensor([math.log(rho)], requires_grad=True)
    loss = ppo_clip(logp, torch.zeros(1), torch.tensor([A]))
    loss.sum().backward()
    return loss.item(), logp.grad.item()


@pytest.mark.parametrize(
    ("rho", "A", "loss", "clipped"),
    [
        # rho = 1.5 > 1 + 0.28: positive A is clipped: -min(1.5, 1.28) = -1.28, no gradient
        (1.5, 1.0, -1.28, True),
        # negative A is not clipped above: -min(-1.5, -1.28) = 1.5, gradient flows
        (1.5, -1.0, 1.5, False),
        # rho = 0.5 < 1 - 0.2: negative A is clipped: -min(-0.5, -0.8) = 0.8, no gradient
        (0.5, -1.0, 0.8, True),
        # positive A is not clipped below: -min(0.5, 0.8) = -0.5, gradient flows
        (0.5, 1.0, -0.5, False),
        # decoupled clip: rho = 1.25 is inside 1 + eps_high = 1.28 (a symmetric 0.2 would clip at 1.2)
        (1.25, 2.0, -2.5, False),
        # rho = 0.78 is outside 1 - eps_low = 0.8 with A < 0: -min(-0.78*3, -0.8*3) = 2.4
        (0.78, -3.0, 2.4, True),
    ],
)
def test_ppo_clip_both_sides(rho, A, loss, clipped):
    got, grad = _loss_and_grad(rho, A)
    assert got == pytest.approx(loss, rel=1e-6)
    if clipped:
        assert grad == 0.0
    else:
        # d/dlogp of -rho*A = -rho*A
        assert grad == pytest.approx(-rho * A, rel=1e-6)


def test_kl_k3_by_hand():
    # pi = 0.5, ref = 0.25: d = log(0.25) - log(0.5) = -0.6931472; k3 = exp(d) - d - 1 = 0.5 + 0.6931472 - 1 = 0.1931472
    k = kl_k3(torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)]))
    assert k.item() == pytest.approx(0.1931472, rel=1e-6)
    # pi = 0.25, ref = 0.5: d = +0.6931472; k3 = 2 - 0.6931472 - 1 = 0.3068528
    assert kl_k3(torch.tensor([math.log(0.25)]), torch.tensor([math.log(0.5)])).item() == pytest.approx(0.3068528, rel=1e-6)
    assert kl_k3(torch.tensor([-1.3]), torch.tensor([-1.3])).item() == 0.0


def _aggregation_batch():
    # row 0 = episode 0: turn 0 has 3 tokens x = 1, turn 1 has 1 token x = 4; position 2 and the pad carry 100
    # row 1 = episode 1: turn 0 has 2 tokens x = 0
    x = torch.tensor([[1.0, 1.0, 100.0, 1.0, 4.0, 100.0], [0.0, 0.0, 100.0, 100.0, 100.0, 100.0]])
    mask = torch.tensor([[1, 1, 0, 1, 1, 0], [1, 1, 0, 0, 0, 0]]).bool()
    turn_ids = torch.tensor([[0, 0, -1, 0, 1, -1], [0, 0, -1, -1, -1, -1]])
    return x, mask, turn_ids, torch.tensor([0, 1])


def test_three_aggregations_differ_on_unequal_lengths():
    x, mask, turn_ids, eps = _aggregation_batch()
    # token_mean: (1 + 1 + 1 + 4 + 0 + 0) / 6 = 7/6
    assert AGGREGATIONS["token_mean"](x, mask, turn_ids, eps).item() == pytest.approx(7 / 6)
    # seq_mean: mean(7/4, 0/2) = 0.875
    assert AGGREGATIONS["seq_mean"](x, mask, turn_ids, eps).item() == pytest.approx(0.875)
    # turn_mean: episode 0 = mean(turn 0: 3/3 = 1, turn 1: 4/1 = 4) = 2.5; episode 1 = 0; mean = 1.25
    assert AGGREGATIONS["turn_mean"](x, mask, turn_ids, eps).item() == pytest.approx(1.25)


def test_turn_mean_groups_turn_view_rows_by_episode():
    # the same two turns of episode 0 as two rows of the turn view (episode ids [0, 0]), plus episode 1
    x = torch.tensor([[1.0, 1.0, 1.0, 0.0], [4.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]]).bool()
    turn_ids = torch.tensor([[0, 0, 0, -1], [1, -1, -1, -1], [0, 0, -1, -1]])
    got = AGGREGATIONS["turn_mean"](x, mask, turn_ids, torch.tensor([0, 0, 1])).item()
    assert got == pytest.approx(1.25)  # as in the episode view


def test_gradient_only_on_action_tokens():
    torch.manual_seed(0)
    B, L = 2, 6
    logp = (torch.randn(B, L) * 0.1 - 1.0).requires_grad_(True)
    old = torch.full((B, L), -1.0)
    ref = torch.full((B, L), -1.2)
    A = torch.tensor([[0.0, 0.0, 1.0, 0.0, -1.0, 5.0], [0.0, 2.0, 2.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[0, 0, 1, 0, 1, 0], [0, 1, 1, 0, 0, 0]]).bool()
    turn_ids = torch.where(mask, 0, -1)
    logits = torch.randn(B, L, 5, requires_grad=True)
    for agg in AGGREGATIONS:
        logp.grad = logits.grad = None
        cfg = LossConfig(beta=0.1, entropy_coef=0.01, aggregation=agg)
        H = token_entropy(logits)
        loss, stats = policy_loss(logp, old, A, mask, cfg=cfg, ref_logp=ref, entropy=H, turn_ids=turn_ids)
        loss.backward()
        assert torch.all(logp.grad[~mask] == 0), agg
        assert torch.all(logp.grad[mask] != 0), agg
        # entropy at position k comes from logits k-1: only the logits just before action tokens get gradient
        before_action = logits.grad[:, :-1].abs().sum(-1) != 0
        assert torch.equal(before_action, mask[:, 1:]) and torch.all(logits.grad[:, -1] == 0), agg
        assert set(stats) >= {"pg_loss", "kl", "entropy", "clip_frac_low", "clip_frac_high", "loss"}


def test_policy_loss_needs_reference_for_kl():
    z = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(z, z, z, z.bool(), cfg=LossConfig(beta=0.01))


def test_token_logprobs_alignment():
    # logits at position k-1 predict token k
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [1 / 3, 1 / 3, 1 / 3]]]))
    ids = torch.tensor([[2, 0, 1]])
    got = token_logprobs(logits, ids)[0].tolist()
    assert got == pytest.approx([0.0, math.log(0.5), math.log(0.8)], rel=1e-6)
    H = token_entropy(logits)[0].tolist()
    # H(0.5, 0.25, 0.25) = 0.5 ln 2 + 2 * 0.25 ln 4 = 1.5 ln 2 = 1.0397208
    assert H[1] == pytest.approx(1.0397208, rel=1e-6) and H[0] == 0.0


def test_frozen_reference_is_detached():
    model = torch.nn.Linear(3, 2)
    ref = frozen_reference(model)
    assert not any(p.requires_grad for p in ref.parameters()) and not ref.training
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not torch.equal(ref.weight, model.weight)


def test_value_head_and_loss():
    head = ValueHead(hidden_size=4)
    v = head(torch.randn(2, 3, 4))
    assert v.shape == (2, 3)
    # 0.5 * mean over masked tokens of (V - R)^2: tokens (0,0): (1-3)^2 = 4, (1,2): (2-1)^2 = 1 -> 0.5 * 5/2 = 1.25
    values = torch.tensor([[1.0, 9.0, 9.0], [9.0, 9.0, 2.0]])
    returns = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    mask = torch.tensor([[1, 0, 0], [0, 0, 1]]).bool()
    assert value_loss(values, returns, mask).item() == pytest.approx(1.25)
    # clipped: V_old = [0, 2], clip 0.5 -> clipped V = [0.5, 2]; errors max((1-3)^2, (0.5-3)^2) = 6.25, max(1, 1) = 1
    # -> 0.5 * 7.25 / 2 = 1.8125
    old = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    assert value_loss(values, returns, mask, old_values=old, clip=0.5).item() == pytest.approx(1.8125)
