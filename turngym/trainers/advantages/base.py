"""What every advantage estimator shares: the result type, the options every one of them has, and
the two statistics they are built from (group normalisation and the discounted return-to-go).

An estimator is a pure function ``fn(table, config) -> Advantages``. It names its grouping key in
its config (``group_key``), never guesses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from turngym.trainers.table import GroupKey, TurnTable

__all__ = ["Advantages", "EstimatorConfig", "Norm", "group_normalize", "returns_to_go", "turn_advantages", "turn_groups"]

#: "std": divide by the group std (+ eps); "mean": subtract the mean only (divide by 1)
Norm = Literal["std", "mean"]


class EstimatorConfig(BaseModel):
    """Options every estimator has. ``std_ddof=1`` is the unbiased std of ``torch.std`` that the public
    GRPO code (TRL, verl, verl-agent) uses; the papers write "std" without saying which."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    group_key: GroupKey = Field(
        "group_id",
        description="the episodes compared with each other: 'group_id' (the G episodes sampled together), "
        "'instance_hash' (every episode of the same task instance) or 'task_id'",
    )
    eps: float = Field(1e-6, ge=0.0, description="added to the group std before dividing by it")
    std_ddof: Literal[0, 1] = Field(1, description="the std's delta degrees of freedom: 1 unbiased (torch.std), 0 population")


@dataclass(frozen=True, eq=False)
class Advantages:
    """Advantages over a table: ``turn`` (M,) per turn row, ``token`` (N,) per token of the flat stream
    (0 where no loss is taken), ``keep`` (E,) False for episodes a filter dropped (their advantages are
    0: leave them out of the batch), ``returns`` (N,) value targets of critic-based estimators."""

    turn: np.ndarray
    token: np.ndarray
    keep: np.ndarray
    returns: np.ndarray | None = None


def group_normalize(
    x: np.ndarray, groups: np.ndarray, *, norm: Norm = "std", eps: float = 1e-6, ddof: int = 1
) -> np.ndarray:
    """(x - mean_g x) / (std_g x + eps) inside each group g, or x - mean_g x for ``norm="mean"``.

    A group of one gives 0 (nothing to compare with), so does a group whose values are all equal.
    """
    x = np.asarray(x, dtype=np.float64)
    groups = np.asarray(groups, dtype=np.int64)
    if len(x) == 0:
        return x.copy()
    n = np.bincount(groups)
    mean = np.bincount(groups, weights=x) / np.maximum(n, 1)
    centred = x - mean[groups]
    if norm == "mean":
        return centred
    if norm != "std":
        raise ValueError(f"unknown normalisation {norm!r}: use 'std' or 'mean'")
    ss = np.bincount(groups, weights=centred**2)
    var = np.where(n > ddof, ss / np.maximum(n - ddof, 1), 0.0)
    return centred / (np.sqrt(var)[groups] + eps)


def returns_to_go(table: TurnTable, gamma: float) -> np.ndarray:
    """G_t = sum_{k>=t} gamma^(k-t) r_k per turn row, inside each episode."""
    g = np.zeros(table.num_turn_rows, dtype=np.float64)
    for e in range(len(table)):
        running = 0.0
        for m in range(int(table.turn_offsets[e + 1]) - 1, int(table.turn_offsets[e]) - 1, -1):
            running = float(table.reward[m]) + gamma * running
            g[m] = running
    return g


def turn_advantages(table: TurnTable, turn: np.ndarray) -> Advantages:
    """Wrap per-turn advantages: every loss token of turn t gets A_t."""
    turn = np.asarray(turn, dtype=np.float64)
    tt = table.token_turn
    token = np.where(tt >= 0, turn[np.maximum(tt, 0)] if len(turn) else 0.0, 0.0)
    return Advantages(turn=turn, token=token, keep=np.ones(len(table), dtype=bool))


def turn_groups(table: TurnTable, groups: np.ndarray) -> np.ndarray:
    """Dense ids of (episode group, turn index t): turn-index grouping."""
    key = groups[table.turn_episode] * (int(table.num_turns.max(initial=0)) + 1) + table.turn_index
    _, ids = np.unique(key, return_inverse=True)
    return ids.astype(np.int64)
