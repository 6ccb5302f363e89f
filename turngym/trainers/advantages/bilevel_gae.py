"""Bi-level GAE with a turn-level critic (RAGEN, Wang et al. 2025, "RAGEN: Understanding Self-Evolution
in LLM Agents via Multi-Turn Reinforcement Learning", and turn-level PPO; RESEARCH.md section 4c).

A critic V gives a value at every token; e_t is the last action token of turn t.

- turn level: delta_t = r_t + gamma_turn * V(e_{t+1}) - V(e_t), V(e_{T+1}) = 0;
  Ahat_t = delta_t + gamma_turn * lambda * Ahat_{t+1}
- token level inside turn t: the last token gets the reward Ahat_t + V(e_t), the others 0, and ordinary
  GAE(gamma, lambda) runs over the turn's action tokens (no value after the turn's last token)
- the token advantages are whitened over all action tokens; value targets = unwhitened A + V.

The values come from ``turngym.trainers.value_head`` (collate, run the critic, ``uncollate`` to the flat
stream). ``group_key`` is used only by filters: this estimator needs no groups.

In ``turngym train`` the on-policy loop trains the critic (``value_head.TurnCritic``): a linear value head
on the policy's last hidden states, V_k read at the position that predicts action token k (so the first
action token of turn t carries V(s_t), the value of the turn's context), trained with its own optimizer
on the targets ``returns`` after each policy update; ``critic:`` below holds its options.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from turngym.trainers.advantages.base import Advantages, EstimatorConfig
from turngym.trainers.table import TurnTable


class TurnCriticConfig(BaseModel):
    """``algorithm: {name: bilevel_gae, critic: {...}}``: the turn critic that the training loop trains.

    A linear value head on the policy's last hidden states, which are detached (the value loss never
    reaches the policy's weights), with an AdamW optimizer of its own. The hidden states of an
    iteration are computed once, before the policy update, and the head's steps reuse them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lr: float = Field(1e-2, gt=0, description="learning rate of the value head (its own AdamW)")
    steps_per_iteration: int = Field(
        16, ge=1, description="full-batch gradient steps of the value head per iteration, on the iteration's action tokens"
    )
    value_clip: float | None = Field(
        None, gt=0, description="PPO's clipped value loss around the values the estimator used (None: plain MSE)"
    )
    grad_clip: float = Field(1.0, ge=0, description="max grad norm of the value head (0: no clipping)")
    init_std: float = Field(1e-2, ge=0, description="std of the head's initial weights (its bias starts at 0)")


class BilevelGAEConfig(EstimatorConfig):
    """``algorithm: bilevel_gae``: GAE over turns, then over each turn's tokens, with a learned value head."""

    name: Literal["bilevel_gae"] = "bilevel_gae"
    gamma: float = Field(1.0, description="token-level discount")
    lam: float = Field(1.0, description="lambda of GAE, at both levels")
    gamma_turn: float = Field(0.95, description="turn-level discount")
    whiten: bool = Field(True, description="whiten the token advantages over all action tokens")
    critic: TurnCriticConfig = Field(
        default_factory=TurnCriticConfig, description="the turn critic trained by the loop (TurnCriticConfig)"
    )


def turn_level_gae(r: np.ndarray, v_end: np.ndarray, *, gamma_turn: float, lam: float) -> np.ndarray:
    """Ahat_t for the turns of one episode, from turn rewards r_t and turn-end values V(e_t)."""
    A = np.zeros(len(r), dtype=np.float64)
    next_A, next_v = 0.0, 0.0  # the episode ends after its last turn: V(e_{T+1}) = 0
    for t in range(len(r) - 1, -1, -1):
        delta = r[t] + gamma_turn * next_v - v_end[t]  # delta_t = r_t + gamma_turn V(e_{t+1}) - V(e_t)
        next_A = A[t] = delta + gamma_turn * lam * next_A  # Ahat_t = delta_t + gamma_turn lambda Ahat_{t+1}
        next_v = v_end[t]
    return A


def token_level_gae(rewards: np.ndarray, values: np.ndarray, *, gamma: float, lam: float) -> np.ndarray:
    """Ordinary GAE over one token sequence that ends after its last token."""
    A = np.zeros(len(rewards), dtype=np.float64)
    next_A, next_v = 0.0, 0.0
    for k in range(len(rewards) - 1, -1, -1):
        delta = rewards[k] + gamma * next_v - values[k]  # delta_k = r_k + gamma V_{k+1} - V_k
        next_A = A[k] = delta + gamma * lam * next_A  # A_k = delta_k + gamma lambda A_{k+1}
        next_v = values[k]
    return A


def bilevel_gae(table: TurnTable, cfg: BilevelGAEConfig, *, values: np.ndarray) -> Advantages:
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(table.tokens),):
        raise ValueError(
            f"bilevel_gae needs one critic value per token of the table ({len(table.tokens)}), got shape "
            f"{values.shape}: run the critic on collate_episodes(table) and map back with uncollate"
        )
    tt = table.token_turn
    pos = np.flatnonzero(tt >= 0)  # loss tokens, in stream order, so their turn rows do not decrease
    bounds = np.searchsorted(tt[pos], np.arange(table.num_turn_rows + 1))
    empty = np.flatnonzero(np.diff(bounds) == 0)
    if len(empty):
        m = int(empty[0])
        raise ValueError(
            f"turn {int(table.turn_index[m])} of episode {table.episode_id[table.turn_episode[m]]!r} has no "
            "action tokens, so it has no turn-end value V(e_t): bilevel_gae needs token streams (trainable "
            "episodes) with a non-empty action span in every turn"
        )
    A_tok = np.zeros(len(table.tokens), dtype=np.float64)
    A_turn = np.zeros(table.num_turn_rows, dtype=np.float64)
    for e in range(len(table)):
        rows = range(int(table.turn_offsets[e]), int(table.turn_offsets[e + 1]))
        v_end = np.array([values[pos[bounds[m + 1] - 1]] for m in rows])  # V(e_t)
        r_turn = table.reward[rows.start : rows.stop]
        A_turn[rows.start : rows.stop] = turn_level_gae(r_turn, v_end, gamma_turn=cfg.gamma_turn, lam=cfg.lam)
        for t, m in enumerate(rows):
            p = pos[bounds[m] : bounds[m + 1]]
            r = np.zeros(len(p))
            r[-1] = A_turn[m] + v_end[t]  # the turn's last token carries Ahat_t + V(e_t)
            A_tok[p] = token_level_gae(r, values[p], gamma=cfg.gamma, lam=cfg.lam)
    returns = np.where(tt >= 0, A_tok + values, 0.0)  # value targets
    if cfg.whiten and len(pos):
        a = A_tok[pos]
        std = a.std(ddof=cfg.std_ddof) if len(a) > cfg.std_ddof else 0.0
        A_tok[pos] = (a - a.mean()) / (std + cfg.eps)
    return Advantages(turn=A_turn, token=A_tok, keep=np.ones(len(table), dtype=bool), returns=returns)
