"""ArCHer's math by hand: TD targets, critic losses, Polyak update, advantage sign, actor step, baseline."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from turngym.trainers.archer.critic import DoubleCritic, critic_losses, make_target
from turngym.trainers.archer.math import (
    actor_loss,
    advantage,
    baseline_loss,
    critic_q_loss,
    critic_v_loss,
    polyak_update,
    td_target,
)


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)


def test_td_target_by_hand_masks_done():
    # y_k = r + gamma (1 - done) Vbar_k(s'), per head k; gamma = 0.5
    r = t([1.0, 0.0, -1.0])
    done = torch.tensor([False, True, False])
    v_bar_next = t([[2.0, 3.0, 4.0], [1.0, 5.0, 0.0]])
    y = td_target(r, done, v_bar_next, gamma=0.5)
    assert y.shape == (2, 3)
    assert torch.allclose(y, t([[1 + 0.5 * 2, 0.0, -1 + 0.5 * 4], [1 + 0.5 * 1, 0.0, -1 + 0.0]]))
    # the done transition ignores Vbar(s') whatever its value; 0/1 floats mean the same as bools
    y2 = td_target(r, done.float(), v_bar_next * 100, gamma=0.5)
    assert y2[:, 1].tolist() == [0.0, 0.0]
    # gamma = 0: the target is the reward alone
    assert torch.equal(td_target(r, done, v_bar_next, gamma=0.0), r.expand(2, 3))
    # a target carries no gradient
    v = v_bar_next.clone().requires_grad_(True)
    assert not td_target(r, done, v, gamma=0.5).requires_grad


def test_critic_losses_by_hand_on_three_transitions():
    q = t([[1.0, 2.0, 0.0], [0.0, 4.0, 1.0]]).requires_grad_(True)
    y = t([[0.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    # head 1: (1 + 0 + 9) / 3; head 2: (1 + 9 + 0) / 3; summed over heads
    loss = critic_q_loss(q, y)
    assert loss.item() == pytest.approx(10 / 3 + 10 / 3)
    loss.backward()
    assert torch.allclose(q.grad, 2 * (q.detach() - y) / 3)  # d/dq of the mean square error
    v = t([[0.5, 0.5, 0.5], [1.0, 2.0, 3.0]])
    q_bar = t([[0.5, 1.5, -0.5], [1.0, 2.0, 3.0]])
    assert critic_v_loss(v, q_bar).item() == pytest.approx((0 + 1 + 1) / 3 + 0.0)


def test_critic_losses_on_a_real_critic_match_a_per_transition_loop():
    """L_Q and L_V from DoubleCritic outputs equal the per-head, per-transition formulas computed by hand."""
    torch.manual_seed(0)
    critic = DoubleCritic(encoder=None, feature_dim=3, hidden_dim=8)
    target = make_target(critic)
    s, a, s2, a_tilde = (torch.randn(3, 3) for _ in range(4))
    r, done, gamma = t([0.5, -1.0, 2.0]), t([0.0, 0.0, 1.0]), 0.9
    q, v = critic(s, a)
    with torch.no_grad():
        y = td_target(r, done, target.values(s2), gamma)
        q_tilde = target(s, a_tilde).q
    lq, lv = critic_q_loss(q, y), critic_v_loss(v, q_tilde)
    exp_q = exp_v = 0.0
    with torch.no_grad():
        for k in range(2):
            for i in range(3):
                q_ki = critic.q_heads[k](torch.cat([s[i], a[i]])).item()
                y_ki = r[i].item() + gamma * (1 - done[i].item()) * target.v_heads[k](s2[i]).item()
                v_ki = critic.v_heads[k](s[i]).item()
                qbar_ki = target.q_heads[k](torch.cat([s[i], a_tilde[i]])).item()
                exp_q += (q_ki - y_ki) ** 2 / 3
                exp_v += (v_ki - qbar_ki) ** 2 / 3
    assert lq.item() == pytest.approx(exp_q, rel=1e-5)
    assert lv.item() == pytest.approx(exp_v, rel=1e-5)
    # the helper the training loop calls computes the same two losses, with gradient only into the critic
    out = critic_losses(
        critic, target, states=s, actions=a, next_states=s2, pi_actions=a_tilde, rewards=r, dones=done, gamma=gamma
    )
    assert out.q_loss.item() == pytest.approx(exp_q, rel=1e-5) and out.v_loss.item() == pytest.approx(exp_v, rel=1e-5)
    (out.q_loss + out.v_loss).backward()
    assert all(p.grad is not None for p in critic.parameters()) and all(p.grad is None for p in target.parameters())


def test_polyak_update_by_hand():
    online, target = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        online.weight.copy_(t([[1.0, 2.0]]))
        online.bias.copy_(t([3.0]))
        target.weight.zero_()
        target.bias.copy_(t([1.0]))
    polyak_update(target, online, tau=0.1)  # theta_bar <- 0.9 theta_bar + 0.1 theta
    assert torch.allclose(target.weight, t([[0.1, 0.2]]))
    assert torch.allclose(target.bias, t([0.9 * 1.0 + 0.3]))
    polyak_update(target, online, tau=0.1)
    assert torch.allclose(target.weight, t([[0.9 * 0.1 + 0.1, 0.9 * 0.2 + 0.2]]))
    assert torch.allclose(target.bias, t([0.9 * 1.2 + 0.3]))
    # the online module is untouched; tau = 1 copies; tau = 0 keeps
    assert torch.equal(online.weight, t([[1.0, 2.0]]))
    polyak_update(target, online, tau=0.0)
    assert torch.allclose(target.bias, t([1.38]))
    polyak_update(target, online, tau=1.0)
    assert torch.equal(target.weight, online.weight) and torch.equal(target.bias, online.bias)


def test_polyak_update_in_place_without_grad_on_a_target_copy():
    torch.manual_seed(0)
    critic = DoubleCritic(encoder=None, feature_dim=4)
    target = make_target(critic)
    before = {n: p.clone() for n, p in target.named_parameters()}
    ids = {n: id(p) for n, p in target.named_parameters()}
    with torch.no_grad():
        for p in critic.parameters():
            p.add_(1.0)
    polyak_update(target, critic, tau=0.25)
    online = dict(critic.named_parameters())
    for n, p in target.named_parameters():
        assert id(p) == ids[n] and not p.requires_grad and p.grad is None
        assert torch.allclose(p, 0.75 * before[n] + 0.25 * online[n])
    with pytest.raises(ValueError, match="tau=1.5"):
        polyak_update(target, critic, tau=1.5)
    with pytest.raises(ValueError, match="no twin"):
        polyak_update(nn.Linear(2, 2), nn.Linear(3, 2), tau=0.1)


def test_target_copy_is_frozen_and_independent():
    critic = DoubleCritic(encoder=None, feature_dim=4)
    target = make_target(critic)
    assert not target.training and all(not p.requires_grad for p in target.parameters())
    assert all(p.requires_grad for p in critic.parameters())
    with torch.no_grad():
        next(critic.parameters()).add_(1.0)
    assert not torch.equal(next(critic.parameters()), next(target.parameters()))


def test_advantage_sign_and_min_over_heads():
    q = t([[3.0, 1.0], [2.5, 0.5]])  # Q_k(s, a~) for two samples
    v = t([[1.0, 1.0], [2.0, 2.0]])
    a = advantage(q, v)  # min_k Q_k - min_k V_k
    assert a.tolist() == [pytest.approx(1.5), pytest.approx(-0.5)]
    assert not advantage(q.requires_grad_(True), v).requires_grad


@pytest.mark.parametrize("better", [True, False])
def test_one_actor_step_moves_the_sampled_utterance_with_the_sign_of_a(better: bool):
    """A tiny categorical policy over 4 tokens emits a 2-token utterance a~. When the critic scores a~ above
    V(s) (A > 0) one REINFORCE step raises log pi(a~ | s); when below (A < 0) it lowers it."""
    torch.manual_seed(0)
    logits = nn.Parameter(torch.zeros(2, 4))  # pi(a_j) for positions j = 1, 2
    a_tilde = torch.tensor([[2, 1]])
    mask = torch.ones(1, 2)
    critic = DoubleCritic(encoder=None, feature_dim=2, hidden_dim=4)
    with torch.no_grad():  # fix the heads' output biases so Q(s, a~) is 1 above or below V(s)
        for head in [*critic.q_heads, *critic.v_heads]:
            head[-1].weight.zero_()
        for k in range(2):
            critic.q_heads[k][-1].bias.fill_((1.0 if better else -1.0) + k)  # min_k Q_k = +-1
            critic.v_heads[k][-1].bias.fill_(0.0 + k)  # min_k V_k = 0
    with torch.no_grad():
        q, v = critic(torch.zeros(1, 2), torch.zeros(1, 2))
    a = advantage(q, v)
    assert (a > 0).item() is better

    def logp() -> torch.Tensor:
        return torch.log_softmax(logits, -1).gather(-1, a_tilde.T).T  # [1, 2]: log pi(a~_j | s, a~_<j)

    before = logp().sum().item()
    opt = torch.optim.SGD([logits], lr=0.1)
    actor_loss(logp(), mask, a).backward()
    opt.step()
    after = logp().sum().item()
    assert (after > before) is better and after != before


def test_actor_loss_by_hand_and_per_token_baseline():
    logprobs = t([[-1.0, -2.0, -3.0], [-0.5, -0.5, 0.0]])
    mask = t([[1, 1, 1], [1, 1, 0]])
    a = t([2.0, -1.0])
    # -mean_b(A_b * sum_j log pi_j): b=0 -> -(2*-6), b=1 -> -(-1*-1)
    assert actor_loss(logprobs, mask, a).item() == pytest.approx((12.0 - 1.0) / 2)
    base = t([[1.0, 2.0, 9.0], [0.0, -1.0, 5.0]])
    # weights (A - b_j): [1, 0, -7], [-1, 0, *masked*]
    exp = -((1 * -1 + 0 * -2 + -7 * -3) + (-1 * -0.5 + 0 * -0.5)) / 2
    assert actor_loss(logprobs, mask, a, base).item() == pytest.approx(exp)
    # a perfect baseline (b_j = A) gives no policy gradient
    lp = logprobs.clone().requires_grad_(True)
    actor_loss(lp, mask, a, a[:, None].expand(2, 3)).backward()
    assert torch.count_nonzero(lp.grad) == 0
    # L_b = mean over action tokens of (b_j - A)^2: (1 + 0 + 49 + 1 + 0) / 5
    b = base.clone().requires_grad_(True)
    assert baseline_loss(b, a, mask).item() == pytest.approx(51 / 5)
    baseline_loss(b, a, mask).backward()
    assert b.grad[1, 2].item() == 0.0  # padding carries no loss
