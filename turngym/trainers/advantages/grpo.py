"""Trajectory-level group baselines: GRPO and RLOO (RESEARCH.md section 2).

GRPO: Shao et al. 2024, "DeepSeekMath" (Group Relative Policy Optimization), outcome supervision.
RLOO: Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style Optimization" (leave-one-out).
Every action token of episode i gets the same A_i.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from turngym.trainers.advantages.base import Advantages, EstimatorConfig, Norm, group_normalize, turn_advantages
from turngym.trainers.table import TurnTable

#: the episode score: R_i = sum_t r_t ("return") or the outcome o_i ("outcome")
Score = Literal["return", "outcome"]


class GRPOConfig(EstimatorConfig):
    """``algorithm: grpo``: one group-normalised score per episode, A_i = (R_i - mean R) / (std R + eps)."""

    name: Literal["grpo"] = "grpo"
    norm: Norm = Field("std", description="'std': divide by the group std (+ eps); 'mean': subtract the group mean only")
    score: Score = Field("return", description="the episode score R_i: 'return' (sum of turn rewards) or 'outcome'")


class RLOOConfig(EstimatorConfig):
    """``algorithm: rloo``: the leave-one-out mean of the other G-1 episodes as each episode's baseline."""

    name: Literal["rloo"] = "rloo"
    score: Score = Field("return", description="the episode score R_i: 'return' (sum of turn rewards) or 'outcome'")


def _score(table: TurnTable, score: Score) -> np.ndarray:
    return table.returns if score == "return" else table.outcome


def grpo_advantage(R: np.ndarray, groups: np.ndarray, *, norm: Norm = "std", eps: float = 1e-6, ddof: int = 1) -> np.ndarray:
    # A_i = (R_i - mean_j R_j) / (std_j R_j + eps)  over the G episodes j of i's group  (GRPO)
    return group_normalize(R, groups, norm=norm, eps=eps, ddof=ddof)


def rloo_advantage(R: np.ndarray, groups: np.ndarray) -> np.ndarray:
    # A_i = R_i - mean_{j != i} R_j = (G R_i - sum_j R_j) / (G - 1)  (RLOO); 0 for a group of one
    R = np.asarray(R, dtype=np.float64)
    G = np.bincount(groups)[groups]
    total = np.bincount(groups, weights=R)[groups]
    return np.where(G > 1, (G * R - total) / np.maximum(G - 1, 1), 0.0)


def grpo(table: TurnTable, cfg: GRPOConfig) -> Advantages:
    """Trajectory GRPO: one A_i per episode, broadcast to all its turns and action tokens."""
    groups = table.group_index(cfg.group_key)
    A = grpo_advantage(_score(table, cfg.score), groups, norm=cfg.norm, eps=cfg.eps, ddof=cfg.std_ddof)
    return turn_advantages(table, A[table.turn_episode])


def rloo(table: TurnTable, cfg: RLOOConfig) -> Advantages:
    """RLOO: the leave-one-out group mean as the baseline of each episode."""
    A = rloo_advantage(_score(table, cfg.score), table.group_index(cfg.group_key))
    return turn_advantages(table, A[table.turn_episode])
