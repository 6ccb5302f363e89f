"""MT-GRPO: turn-level credit assignment (Zeng et al. 2025, "Reinforcing Multi-Turn Reasoning in LLM
Agents via Turn-Level Credit Assignment"; RESEARCH.md section 4a), generalised to T turns.

R^O_i is the outcome o_i of episode i; R^T_{i,t} the reward r_t of its turn t. The paper's two-turn
setting has one turn before the final answer; with T turns the turn statistics are taken at each
turn index t across the episodes of the group (turn-index grouping), over the turns that are not
their episode's final turn (only those carry a turn advantage).

- ``"aae"`` (paper default): A_{i,t} = Ahat^O_i + lambda * Ahat^T_{i,t} for t before the final turn,
  A_{i,T_i} = Ahat^O_i for the final turn.
- ``"cae"``: A_{i,t} = normalise_t(R^T_{i,t} + gamma * R^O_i) before the final turn,
  normalise(R^O_i) at the final turn.
- ``"rtg"``: A_{i,t} = normalise_t(G_{i,t}), G_t = sum_{k>=t} gamma^(k-t) r_k, over every episode of the
  group that has a turn t (the T-turn generalisation of RESEARCH.md 4a, last bullet).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from turngym.trainers.advantages.base import (
    Advantages,
    EstimatorConfig,
    Norm,
    group_normalize,
    returns_to_go,
    turn_advantages,
    turn_groups,
)
from turngym.trainers.table import TurnTable


class MTGRPOConfig(EstimatorConfig):
    """``algorithm: mt_grpo``: turn-level credit, the outcome advantage plus a per-turn one."""

    name: Literal["mt_grpo"] = "mt_grpo"
    mode: Literal["aae", "cae", "rtg"] = Field(
        "aae",
        description="'aae': outcome advantage + lam * turn advantage (the paper's default); 'cae': normalised "
        "turn reward + gamma * outcome; 'rtg': normalised discounted return-to-go per turn index",
    )
    lam: float = Field(1.0, description="lambda: weight of the turn advantage (aae)")
    gamma: float = Field(1.0, description="weight of the outcome R^O (cae); discount of the return-to-go (rtg)")
    norm: Norm = Field("std", description="'std': divide by the group std (+ eps); 'mean': subtract the group mean only")


def mt_grpo(table: TurnTable, cfg: MTGRPOConfig) -> Advantages:
    groups = table.group_index(cfg.group_key)
    tg = turn_groups(table, groups)  # (group, turn index t)
    ep, last = table.turn_episode, table.is_last_turn
    norm = dict(norm=cfg.norm, eps=cfg.eps, ddof=cfg.std_ddof)
    if cfg.mode == "rtg":
        # A_{i,t} = (G_{i,t} - mean_j G_{j,t}) / (std_j G_{j,t} + eps)
        return turn_advantages(table, group_normalize(returns_to_go(table, cfg.gamma), tg, **norm))
    A_O = group_normalize(table.outcome, groups, **norm)[ep]  # Ahat^O_i
    A = A_O.copy()  # final turn: A = Ahat^O_i
    early = ~last
    if cfg.mode == "aae":
        # before the final turn: A = Ahat^O_i + lambda * Ahat^T_{i,t}
        A_T = group_normalize(table.reward[early], tg[early], **norm)
        A[early] += cfg.lam * A_T
    else:
        # before the final turn: A = normalise_t(R^T_{i,t} + gamma * R^O_i)
        A[early] = group_normalize(table.reward[early] + cfg.gamma * table.outcome[ep][early], tg[early], **norm)
    return turn_advantages(table, A)

