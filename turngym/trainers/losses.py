"""Policy losses over padded [B, L] token tensors (RESEARCH.md section 1).

- ``ppo_clip``: per-token PPO-clip with decoupled clip (Schulman et al. 2017, "Proximal Policy
  Optimization Algorithms"; eps_low / eps_high as in DAPO, Yu et al. 2025, "DAPO: An Open-Source LLM
  Reinforcement Learning System at Scale").
- ``kl_k3``: the k3 estimator of KL(pi_theta || pi_ref) per token (Schulman 2020, "Approximating KL
  Divergence"), to a frozen reference (``frozen_reference``).
- ``token_entropy``: the entropy bonus.
- ``AGGREGATIONS``: how per-token terms become one number: ``token_mean`` (over all action tokens of the
  batch), ``seq_mean`` (per sequence, then over sequences), ``turn_mean`` (per turn, then per episode
  with weight 1/T_i, then over episodes; Flow-GRPO's objective).

Only tokens with ``mask`` True carry loss; the others get exactly zero gradient.

    loss, stats = policy_loss(logp, batch["old_logprobs"], batch["advantages"], batch["loss_mask"],
                              cfg=LossConfig(), ref_logp=ref_logp, turn_ids=batch["turn_ids"],
                              episode_ids=batch["episode"])
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from turngym.trainers.config import Aggregation, LossConfig

__all__ = [
    "AGGREGATIONS",
    "Aggregation",
    "LossConfig",
    "frozen_reference",
    "kl_k3",
    "policy_loss",
    "ppo_clip",
    "seq_mean",
    "token_entropy",
    "token_logprobs",
    "token_mean",
    "turn_mean",
]

# ---- per-token terms -----------------------------------------------------------------------
def ppo_clip(
    logp: torch.Tensor, old_logp: torch.Tensor, A: torch.Tensor, *, eps_low: float = 0.2, eps_high: float = 0.28
) -> torch.Tensor:
    """Per-token PPO-clip loss (to minimise): -min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A)."""
    rho = torch.exp(logp - old_logp)  # rho = pi_theta / pi_old
    return -torch.minimum(rho * A, torch.clamp(rho, 1.0 - eps_low, 1.0 + eps_high) * A)


def truncated_is_weights(prox_logp: torch.Tensor, sampler_logp: torch.Tensor, cap: float) -> torch.Tensor:
    """Truncated importance sampling (Ionides 2008; verl's TIS, AReaL's decoupled PPO): w = min(pi_prox / pi_sampler, C)
    per token, detached, for samples drawn by an older policy than the one the update starts from."""
    return torch.exp(prox_logp - sampler_logp).clamp(max=cap).detach()


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k3 = exp(ref - logp) - (ref - logp) - 1 >= 0, an unbiased low-variance estimate of KL(pi || ref)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """log pi(token_k | tokens_<k) at every position k of ``input_ids`` [B, L] from causal-LM ``logits``
    [B, L, V] (position k is predicted by logits k-1; position 0 gets 0), in float32."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = torch.gather(logp, -1, input_ids[:, 1:, None]).squeeze(-1)
    return torch.nn.functional.pad(picked, (1, 0))


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(pi(. | tokens_<k)) at every position k, aligned as ``token_logprobs`` (position 0 gets 0)."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    H = -(logp.exp() * logp).sum(-1)
    return torch.nn.functional.pad(H, (1, 0))


def frozen_reference(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of ``model`` (eval mode, no gradients) to take the KL against."""
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


# ---- aggregations: fn(x [B, L], mask [B, L] bool, turn_ids [B, L], episode_ids [B]) -> scalar ----
def token_mean(x: torch.Tensor, mask: torch.Tensor, turn_ids: torch.Tensor, episode_ids: torch.Tensor) -> torch.Tensor:
    """sum over all action tokens of the batch / their number."""
    mask = mask.bool()
    return torch.where(mask, x, 0.0).sum() / mask.sum().clamp(min=1)


def seq_mean(x: torch.Tensor, mask: torch.Tensor, turn_ids: torch.Tensor, episode_ids: torch.Tensor) -> torch.Tensor:
    """mean over the sequences (rows) that have action tokens of (sum over the row's tokens / their number)."""
    mask = mask.bool()
    n = mask.sum(-1)
    per_row = torch.where(mask, x, 0.0).sum(-1) / n.clamp(min=1)
    rows = n > 0
    return torch.where(rows, per_row, 0.0).sum() / rows.sum().clamp(min=1)


def turn_mean(x: torch.Tensor, mask: torch.Tensor, turn_ids: torch.Tensor, episode_ids: torch.Tensor) -> torch.Tensor:
    """mean_i (1/T_i) sum_t (1/|a_t|) sum_k x: per turn, then per episode, then over episodes.

    A turn is (episode_ids[b], turn_ids[b, k]), so rows of the turn view (one turn per row) and rows of
    the episode view aggregate the same way."""
    mask = mask.bool()
    ep = episode_ids[:, None].expand_as(turn_ids)[mask]
    t = turn_ids[mask]
    vals = x[mask]
    if vals.numel() == 0:
        return x.sum() * 0.0
    width = int(t.max().item()) + 1
    turn_key, turn_of_token = torch.unique(ep * width + t, return_inverse=True)
    n_tok = torch.zeros(len(turn_key), device=x.device, dtype=x.dtype).index_add_(0, turn_of_token, torch.ones_like(vals))
    turn_val = torch.zeros(len(turn_key), device=x.device, dtype=x.dtype).index_add_(0, turn_of_token, vals) / n_tok
    ep_key, ep_of_turn = torch.unique(torch.div(turn_key, width, rounding_mode="floor"), return_inverse=True)
    n_turn = torch.zeros(len(ep_key), device=x.device, dtype=x.dtype).index_add_(0, ep_of_turn, torch.ones_like(turn_val))
    ep_val = torch.zeros(len(ep_key), device=x.device, dtype=x.dtype).index_add_(0, ep_of_turn, turn_val) / n_turn
    return ep_val.mean()


AGGREGATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "token_mean": token_mean,
    "seq_mean": seq_mean,
    "turn_mean": turn_mean,
}


# ---- the whole policy loss -----------------------------------------------------------------
def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    cfg: LossConfig,
    ref_logp: torch.Tensor | None = None,
    entropy: torch.Tensor | None = None,
    turn_ids: torch.Tensor | None = None,
    episode_ids: torch.Tensor | None = None,
    is_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """agg(w * PPO-clip) + beta * agg(k3 KL) - entropy_coef * agg(H), and detached statistics.

    ``turn_ids`` default to one turn per row, ``episode_ids`` to one episode per row; ``is_weights`` (w, from
    ``truncated_is_weights``) default to 1."""
    if cfg.aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown loss aggregation {cfg.aggregation!r}: use one of {', '.join(AGGREGATIONS)}")
    if cfg.beta > 0 and ref_logp is None:
        raise ValueError(f"beta={cfg.beta} needs the reference log-probs: pass ref_logp=, or set beta=0")
    if cfg.entropy_coef > 0 and entropy is None:
        raise ValueError(f"entropy_coef={cfg.entropy_coef} needs per-token entropy: pass entropy=token_entropy(logits)")
    mask = mask.bool()
    if turn_ids is None:
        turn_ids = torch.zeros_like(mask, dtype=torch.long)
    if episode_ids is None:
        episode_ids = torch.arange(mask.shape[0], device=mask.device)
    agg = AGGREGATIONS[cfg.aggregation]

    def reduce(x: torch.Tensor) -> torch.Tensor:
        return agg(x, mask, turn_ids, episode_ids)

    clipped = ppo_clip(logp, old_logp, advantages, eps_low=cfg.eps_low, eps_high=cfg.eps_high)
    pg = reduce(clipped if is_weights is None else is_weights * clipped)
    loss = pg
    stats: dict[str, torch.Tensor] = {"pg_loss": pg.detach()}
    if is_weights is not None:
        n = mask.sum().clamp(min=1)
        stats["is_weight_mean"] = torch.where(mask, is_weights, 0.0).sum() / n
        stats["is_weight_capped"] = ((is_weights >= cfg.tis_cap) & mask).sum() / n
    if ref_logp is not None:
        kl = reduce(kl_k3(logp, ref_logp))
        loss = loss + cfg.beta * kl
        stats["kl"] = kl.detach()
    if entropy is not None:
        H = reduce(entropy)
        loss = loss - cfg.entropy_coef * H
        stats["entropy"] = H.detach()
    with torch.no_grad():
        rho = torch.exp(logp - old_logp)
        n = mask.sum().clamp(min=1)
        stats["clip_frac_low"] = ((rho < 1.0 - cfg.eps_low) & (advantages < 0) & mask).sum() / n
        stats["clip_frac_high"] = ((rho > 1.0 + cfg.eps_high) & (advantages > 0) & mask).sum() / n
        stats["ratio_mean"] = torch.where(mask, rho, 0.0).sum() / n
    stats["loss"] = loss.detach()
    return loss, stats
