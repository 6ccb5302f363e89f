"""ArCHer's math, one screen (Zhou et al. 2024, "ArCHer: Training Language Model Agents via
Hierarchical Multi-Turn RL"; RESEARCH.md section 5). Pure functions of tensors, symbols as in the paper.

Shapes: B transitions in a batch, K = 2 critic heads stacked on dim 0 (``[K, B]``), L action tokens.

    critic step (utterance level, off-policy, on buffer transitions (s, a, r, s', done)):
        y_k   = td_target(r, done, Vbar_k(s'), gamma)              # r + gamma (1 - done) Vbar_k(s')
        L_Q   = critic_q_loss(Q_k(s, a), y_k)                       # sum_k E[(Q_k(s,a) - y_k)^2]
        L_V   = critic_v_loss(V_k(s), Qbar_k(s, a~))  a~ ~ pi       # sum_k E[(V_k(s) - Qbar_k(s,a~))^2]
        polyak_update(target, critic, tau)                          # theta_bar <- (1-tau) theta_bar + tau theta
    actor step (token level, REINFORCE on fresh samples a~ ~ pi_theta(.|s)):
        A     = advantage(Q_k(s, a~), V_k(s))                       # min_k Q_k - min_k V_k
        L_pi  = actor_loss(log pi(a~_j | s, a~_<j), mask, A, b)     # -E[sum_j (A - b_j) log pi(a~_j|.)]
        L_b   = baseline_loss(b, A, mask)                           # optional per-token baseline b_j
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "actor_loss",
    "advantage",
    "baseline_loss",
    "critic_q_loss",
    "critic_v_loss",
    "polyak_update",
    "td_target",
]


def td_target(reward: Tensor, done: Tensor, next_value_target: Tensor, gamma: float) -> Tensor:
    """y_k = r + gamma (1 - done) Vbar_k(s'): the Q target of each head k from its own target V head.

    ``reward``, ``done``: ``[B]`` (done bool or 0/1); ``next_value_target``: ``[K, B]`` = Vbar_k(s').
    Returns ``[K, B]``, detached (a target carries no gradient).
    """
    not_done = 1.0 - done.to(next_value_target.dtype)  # (1 - done): no bootstrap past a terminal state
    return (reward.to(next_value_target.dtype) + gamma * not_done * next_value_target).detach()


def critic_q_loss(q: Tensor, y: Tensor) -> Tensor:
    """L_Q = sum_k E_(s,a,r,s')~D [(Q_k(s, a) - y_k)^2]; ``q``, ``y``: ``[K, B]``."""
    return ((q - y.detach()) ** 2).mean(dim=-1).sum()


def critic_v_loss(v: Tensor, q_target: Tensor) -> Tensor:
    """L_V = sum_k E_(s~D, a~~pi_theta(.|s)) [(V_k(s) - Qbar_k(s, a~))^2]; ``v``, ``q_target``: ``[K, B]``.

    ``q_target`` is the target critic's Qbar_k on a freshly sampled utterance a~, so V learns V^pi.
    """
    return ((v - q_target.detach()) ** 2).mean(dim=-1).sum()


def advantage(q: Tensor, v: Tensor) -> Tensor:
    """A(s, a~) = min_k Q_k(s, a~) - min_k V_k(s); ``q``, ``v``: ``[K, B]`` -> ``[B]``, detached."""
    return (q.min(dim=0).values - v.min(dim=0).values).detach()


def actor_loss(logprobs: Tensor, mask: Tensor, advantage: Tensor, baseline: Tensor | None = None) -> Tensor:
    """L_pi = -E_s [ sum_j (A - b_j) log pi_theta(a~_j | s, a~_<j) ]: REINFORCE at the token level.

    ``logprobs``: ``[B, L]`` log pi_theta of the sampled utterance's tokens (with gradient);
    ``mask``: ``[B, L]`` 1 on the utterance's tokens, 0 on padding; ``advantage``: ``[B]`` (A, no gradient);
    ``baseline``: optional ``[B, L]`` per-token baseline b_j = b(s, a~_<j) (no gradient flows through it here;
    train it with ``baseline_loss``). Without a baseline, b_j = 0: the paper's plain REINFORCE.
    Sum over the utterance's tokens, mean over the batch (as the reference code).
    """
    weight = advantage.detach().to(logprobs.dtype)[:, None].expand_as(logprobs)
    if baseline is not None:
        weight = weight - baseline.detach()  # (A - b_j)
    return -(weight * logprobs * mask.to(logprobs.dtype)).sum(dim=-1).mean()


def baseline_loss(baseline: Tensor, advantage: Tensor, mask: Tensor) -> Tensor:
    """L_b = E_(s, j) [(b(s, a~_<j) - A)^2], the mean over the action tokens (padding left out).

    ``baseline``, ``mask``: ``[B, L]``; ``advantage``: ``[B]`` (the regression target, no gradient).
    """
    m = mask.to(baseline.dtype)
    err = (baseline - advantage.detach().to(baseline.dtype)[:, None]) ** 2
    return (err * m).sum() / m.sum().clamp_min(1.0)


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """theta_bar <- (1 - tau) theta_bar + tau theta, in place, for every parameter of ``target``.

    Buffers (non-learned state such as position ids) are copied. ``target`` must be a copy of ``online``
    (same parameter names and shapes); tau = 1 copies, tau = 0 leaves the target as it is.
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau={tau} is outside [0, 1]; the Polyak rate is a fraction (ArCHer uses 0.1)")
    online_params = dict(online.named_parameters())
    for name, bar in target.named_parameters():
        theta = online_params.get(name)
        if theta is None or theta.shape != bar.shape:
            raise ValueError(
                f"target parameter {name!r} has no twin of shape {tuple(bar.shape)} in the online module; "
                "make the target with make_target(online) so the two have the same structure"
            )
        if bar is theta:  # a module shared by both (a FrozenEncoder): nothing to move
            continue
        bar.lerp_(theta.to(bar.dtype), tau)  # bar + tau (theta - bar) = (1 - tau) bar + tau theta
    online_buffers = dict(online.named_buffers())
    for name, buf in target.named_buffers():
        src = online_buffers.get(name)
        if src is not None and src is not buf and src.shape == buf.shape:
            buf.copy_(src)
