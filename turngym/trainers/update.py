"""One policy update: K epochs of minibatch steps over a batch of episodes (RESEARCH.md section 1).

    metrics = policy_update(model, optimizer, table, adv, optim=OptimConfig(epochs=2), loss=LossConfig())

The batch is the episode view (one row per episode, every turn's action tokens in it): for a causal
model log pi(a_t | s_t) read off the whole episode equals the turn view's, at a fraction of the
tokens, and ``turn_mean`` still weighs every turn as Flow-GRPO's per-turn rows do.

Each minibatch is split into micro-batches (gradient accumulation); each micro-batch's loss is
weighted by its share of the minibatch's aggregation units (tokens for ``token_mean``, sequences for
``seq_mean``, episodes for ``turn_mean``), so accumulation gives the same gradient as one big batch.
With ``skip_zero_advantage`` (default) and no KL or entropy term, episodes whose advantages are
all 0 (a group where every episode scored the same) are left out of the forward pass: they add
nothing to the gradient, and the aggregation's denominator then counts only the episodes that carry
signal (DAPO's dynamic sampling does the same by dropping such groups).
``old_logprobs`` are the ones the backend recorded while sampling (the weight-sync probe checks that
the engine serves the trainer's weights); ``recompute_old_logprobs=True`` recomputes them instead, once per episode,
where the update first meets it (before any step on it), so the later epochs are clipped against them.
``truncated_is=C`` (overlapping rollouts, whose samples come from an older policy): the PPO ratio is taken
against the policy at the update (recomputed, pi_prox) and each token's term weighted by
min(pi_prox / pi_sampler, C) against the logprobs the sampler recorded (``losses.truncated_is_weights``).
On CUDA the forward pass runs under bf16 autocast (``autocast="auto"``); on CPU in float32.
With ``ranks`` (turngym.trainers.distributed, ``learner.processes`` > 1) each process takes its rows of every
minibatch, the weights' denominator counts the minibatch's units on every rank and the gradients are summed
over the ranks before each step: the same update as one process on the whole batch.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from turngym.trainers.advantages import Advantages
from turngym.trainers.config import OptimConfig
from turngym.trainers.constraint import mask_disallowed
from turngym.trainers.distributed import ONE, Ranks
from turngym.trainers.losses import LossConfig, policy_loss, truncated_is_weights
from turngym.trainers.table import TurnTable, collate_episodes

__all__ = ["OptimConfig", "make_optimizer", "policy_update", "scheduled_lr", "sequence_logprobs", "set_scheduled_lr", "torch_threads"]


def scheduled_lr(cfg: OptimConfig, iteration: int, iterations: int) -> float:
    """The learning rate of iteration ``iteration`` (1-based) of ``iterations``: a function of k only,
    so a resumed run replays it exactly."""
    done = (iteration - 1) / iterations
    if cfg.lr_schedule == "linear":
        return cfg.lr * (1.0 - done)
    if cfg.lr_schedule == "wsd":
        return cfg.lr * min(1.0, (1.0 - done) / cfg.lr_decay_fraction)
    return cfg.lr



def set_scheduled_lr(optimizer: torch.optim.Optimizer, cfg: OptimConfig, iteration: int, iterations: int) -> float:
    """Set every param group of ``optimizer`` to ``scheduled_lr`` of this iteration; returns it (for the metrics)."""
    lr = scheduled_lr(cfg, iteration, iterations)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr

@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` inside the block (None: unchanged), restored after."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    # the fused kernel: one pass over all parameters (CPU and CUDA), 2-3x faster than the loop
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=True)


def _autocast(device: torch.device, mode: str) -> Any:
    on = mode == "bf16" or (mode == "auto" and device.type == "cuda")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=on)


def sequence_logprobs(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    *,
    allowed: torch.Tensor | None = None,
    with_entropy: bool = False,
    autocast: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log pi(token_k | tokens_<k) [B, L] on the loss tokens of a collated batch (0 elsewhere),
    renormalised over the allowed tokens where ``batch["fsm_state"]`` marks a constrained action
    token; and the per-token entropy of the same distribution if asked.

    The output layer runs only on the positions that predict a loss token (the decoder's hidden
    states there), not on the whole [B, L, V] stream: with a 32k vocabulary and actions a small part
    of the episode that halves the update's time and memory."""
    ids, mask = batch["input_ids"], batch["loss_mask"].bool()
    b, k = mask.nonzero(as_tuple=True)
    if bool((k == 0).any()):
        raise ValueError("a loss token at position 0 has no context to be predicted from: streams start with a prompt")
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    with _autocast(ids.device, autocast):
        if decoder is not None:
            hidden = decoder(input_ids=ids, attention_mask=batch["attention_mask"]).last_hidden_state
            logits = model.get_output_embeddings()(hidden[b, k - 1]).float()
        else:
            logits = model(input_ids=ids, attention_mask=batch["attention_mask"]).logits[b, k - 1].float()
    if allowed is not None and "fsm_state" in batch:
        logits = mask_disallowed(logits, batch["fsm_state"].long()[b, k], allowed)
    rows = torch.log_softmax(logits, dim=-1)
    logp = torch.zeros(ids.shape, dtype=rows.dtype, device=ids.device).index_put((b, k), rows.gather(-1, ids[b, k][:, None])[:, 0])
    entropy = None
    if with_entropy:
        H = -torch.where(rows > float("-inf"), rows.exp() * rows, 0.0).sum(-1)
        entropy = torch.zeros(ids.shape, dtype=rows.dtype, device=ids.device).index_put((b, k), H)
    return logp, entropy


@torch.no_grad()
def proximal_logprobs(
    model: torch.nn.Module,
    table: TurnTable,
    rows: np.ndarray,
    *,
    micro: int,
    device: torch.device,
    pad_id: int,
    allowed: torch.Tensor | None,
    columns: dict[str, np.ndarray],
    autocast: str,
) -> dict[int, torch.Tensor]:
    """Each of ``rows``' log pi(token) [its stream length] under ``model`` as it is now: PPO's old policy,
    computed once before an update's first step, so every epoch is clipped against it."""
    out: dict[int, torch.Tensor] = {}
    was = model.training
    model.eval()
    for i in range(0, len(rows), micro):
        b = collate_episodes(table, rows[i : i + micro], device=device, pad_id=pad_id, token_columns=columns)
        logp = sequence_logprobs(model, b, allowed=allowed, autocast=autocast)[0]
        for j, r in enumerate(b["episode"].tolist()):
            out[r] = logp[j, : int(b["lengths"][j])].clone()
    model.train(was)
    return out


def _rows_of(logprobs: dict[int, torch.Tensor], b: dict[str, torch.Tensor]) -> torch.Tensor:
    """``logprobs`` of the micro-batch ``b``'s episodes, as its [B, L] (0-padded)."""
    out = torch.zeros_like(b["old_logprobs"])
    for j, r in enumerate(b["episode"].tolist()):
        out[j, : len(logprobs[r])] = logprobs[r]
    return out


def _units(batch: dict[str, torch.Tensor], aggregation: str) -> int:
    mask = batch["loss_mask"]
    if aggregation == "token_mean":
        return int(mask.sum())
    return int((mask.sum(-1) > 0).sum())  # sequences; with one episode per row also episodes


def policy_update(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    table: TurnTable,
    advantages: Advantages,
    *,
    optim: OptimConfig,
    loss: LossConfig,
    device: torch.device | str = "cpu",
    ref_model: torch.nn.Module | None = None,
    fsm_states: np.ndarray | None = None,
    allowed: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    pad_id: int = 0,
    ranks: Ranks = ONE,
    truncated_is: float | None = None,
) -> dict[str, float]:
    """K epochs of minibatch PPO-clip steps on the kept, trainable episodes of ``table``; mean metrics.

    ``fsm_states``/``allowed``: from ``constraint.action_states`` when the episodes were sampled
    under an action constraint. ``generator`` shuffles the minibatches (seed it for repeatable runs; with
    ``ranks``, every rank's generator in the same state). ``ranks``: this process's place in a data-parallel
    learner group (the metrics are then the whole group's)."""
    device = torch.device(device)
    rows = np.flatnonzero(advantages.keep & table.trainable)
    if optim.skip_zero_advantage and loss.beta == 0 and loss.entropy_coef == 0:
        # an episode whose advantages are all 0 adds nothing to the gradient: skip its forward pass
        token_episode = np.repeat(np.arange(len(table)), table.stream_lengths)
        moving = np.bincount(token_episode, weights=np.abs(advantages.token), minlength=len(table)) > 0
        rows = rows[moving[rows]]
    if len(rows) == 0:
        return {"episodes": 0.0, "action_tokens": 0.0, "steps": 0.0}
    if loss.beta > 0 and ref_model is None:
        raise ValueError(f"loss.beta={loss.beta} needs a reference model: pass ref_model=frozen_reference(model)")
    columns: dict[str, np.ndarray] = {"advantages": advantages.token}
    if fsm_states is not None:
        columns["fsm_state"] = fsm_states
    mb = optim.minibatch_size or len(rows)
    micro = optim.micro_batch_size or mb
    # the epochs' shuffles, drawn up front (the same draws as one at a time): which rows this rank will train on
    orders = [rows[torch.randperm(len(rows), generator=generator).numpy()] for _ in range(optim.epochs)]
    minibatches = [ranks.rows(order[start : start + mb]) for order in orders for start in range(0, len(order), mb)]
    proximal = None
    if optim.recompute_old_logprobs or truncated_is is not None:  # pi_old: the policy before the update's first step
        mine = np.unique(np.concatenate(minibatches)) if minibatches else rows[:0]
        proximal = proximal_logprobs(model, table, mine, micro=micro, device=device, pad_id=pad_id, allowed=allowed,
                                     columns=columns, autocast=optim.autocast)
    model.train()
    sums: dict[str, float] = defaultdict(float)
    norms = 0.0
    steps = 0
    params = [p for p in model.parameters() if p.requires_grad]
    for mini in minibatches:  # one optimizer step each
        batches = [
            collate_episodes(table, mini[i : i + micro], device=device, pad_id=pad_id, token_columns=columns)
            for i in range(0, len(mini), micro)
        ]
        if proximal is not None:
            for b in batches:
                sampled, b["old_logprobs"] = b["old_logprobs"], _rows_of(proximal, b)
                if truncated_is is not None:
                    b["is_weights"] = truncated_is_weights(b["old_logprobs"], sampled, truncated_is)
        total = ranks.total(sum(_units(b, loss.aggregation) for b in batches))  # the whole minibatch's
        if total == 0:
            continue
        for b in batches:
            share = _units(b, loss.aggregation) / total
            if share == 0:
                continue
            logp, H = sequence_logprobs(
                model, b, allowed=allowed, with_entropy=loss.entropy_coef > 0, autocast=optim.autocast
            )
            ref = None
            if ref_model is not None:
                with torch.no_grad():
                    ref = sequence_logprobs(ref_model, b, allowed=allowed, autocast=optim.autocast)[0]
            value, stats = policy_loss(
                logp, b["old_logprobs"], b["advantages"], b["loss_mask"], cfg=loss,
                ref_logp=ref, entropy=H, turn_ids=b["turn_ids"].long(), episode_ids=b["episode"],
                is_weights=b.get("is_weights"),
            )
            (value * share).backward()
            for k, v in stats.items():
                sums[k] += float(v) * share
            sums["action_tokens"] += float(b["loss_mask"].sum())
        ranks.sum_gradients(params)
        if optim.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
        else:
            norm = torch.linalg.vector_norm(
                torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None])
            )
        norms += float(norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        steps += 1
    model.eval()
    sums = ranks.sum_stats(sums)
    out = {k: v / max(steps, 1) for k, v in sums.items() if k != "action_tokens"}
    if steps:
        out["grad_norm"] = norms / steps
    out["action_tokens"] = sums.get("action_tokens", 0.0)
    out["episodes"] = float(len(rows))
    out["steps"] = float(steps)
    return out
