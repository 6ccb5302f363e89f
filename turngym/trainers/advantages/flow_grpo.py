"""Flow-GRPO (AgentFlow: "In-the-Flow Agentic System Optimization for Effective Planning and Tool Use",
Li et al. 2025; RESEARCH.md section 3).

Every turn (s_t, a_t) of episode i is its own training row and gets the trajectory outcome o_i
broadcast to it (r_i^t = o_i), normalised within the group. The paper takes the statistics over the
G trajectories; the public code over all turn rows of the group, so long episodes weigh more
(``group_stats="turn_rows"``). Train it with the per-turn loss aggregation (``"turn_mean"``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from turngym.trainers.advantages.base import Advantages, EstimatorConfig, Norm, group_normalize, turn_advantages
from turngym.trainers.table import TurnTable


class FlowGRPOConfig(EstimatorConfig):
    """``algorithm: flow_grpo``: every turn gets its episode's group-normalised outcome."""

    name: Literal["flow_grpo"] = "flow_grpo"
    norm: Norm = Field("std", description="'std': divide by the group std (+ eps); 'mean': subtract the group mean only")
    group_stats: Literal["trajectories", "turn_rows"] = Field(
        "trajectories",
        description="the group statistics over the G trajectories (the paper) or over all turn rows of the group "
        "(the public code: long episodes weigh more)",
    )


def flow_grpo(table: TurnTable, cfg: FlowGRPOConfig) -> Advantages:
    """A_i^t = (o_i - mean_j o_j) / (std_j o_j + eps) for every turn t of episode i."""
    groups = table.group_index(cfg.group_key)
    ep = table.turn_episode
    if cfg.group_stats == "trajectories":
        # mean, std over the G trajectories j of the group (paper)
        A = group_normalize(table.outcome, groups, norm=cfg.norm, eps=cfg.eps, ddof=cfg.std_ddof)[ep]
    else:
        # mean, std over the sum_j T_j turn rows of the group, each carrying o_j (public code)
        A = group_normalize(table.outcome[ep], groups[ep], norm=cfg.norm, eps=cfg.eps, ddof=cfg.std_ddof)
    return turn_advantages(table, A)
