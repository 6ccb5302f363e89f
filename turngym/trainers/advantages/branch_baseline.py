"""Branch baseline: a per-state baseline from the K continuations of one state, played from an env
snapshot (a tree rollout: turngym.agents.runner.branch_tasks; TreePO, Li et al. 2025, takes its advantages
over such subtrees).

A branch set is a parent episode and its branches from turn t, or any K episodes that continue one
snapshot: they share the state s_t exactly (the same history, restored, not re-played). With
G^b_t = sum_{k>=t} r^b_k the return of member b from turn t (its return minus the shared prefix's):

    A^b_{t'} = G^b_t - mean_{j in set} G^j_t        for every turn t' >= t of b   (``norm="mean"``)
    A^b_{t'} = (G^b_t - mean_j G^j_t) / (std_j G^j_t + eps)                       (``norm="std"``)

from the set of the deepest branch point at or before t' that b belongs to. The turns before a root's
first branch point were played once, by the root; a branch's copies of them carry no loss (mask 0). Their
baseline cannot come from the branches, which share their actions, so they get the episode-level one over
the roots of their group, A_i = R_i - mean_j R_j over roots j (GRPO's, with ``norm``), or 0 with
``prefix="zero"``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from turngym.trainers.advantages.base import (
    Advantages,
    EstimatorConfig,
    Norm,
    group_normalize,
    returns_to_go,
    turn_advantages,
)
from turngym.trainers.table import TurnTable

__all__ = ["BranchBaselineConfig", "branch_baseline", "branch_sets", "copied_turns"]


class BranchBaselineConfig(EstimatorConfig):
    """``algorithm: {name: branch_baseline, k: K}``: each episode of ``rollout.group_size`` per task instance is
    branched at a turn drawn uniformly from its turns into K continuations (itself and K - 1 branches), and
    every turn from there gets its continuation's return minus the mean over the K."""

    name: Literal["branch_baseline"] = "branch_baseline"
    k: int = Field(4, ge=2, description="continuations per branch point (the episode itself and k - 1 branches)")
    norm: Norm = Field(
        "mean", description="'mean': subtract the mean over the K continuations (the baseline); 'std': also divide "
        "by their std (+ eps)"
    )
    prefix: Literal["group", "zero"] = Field(
        "group", description="the turns before a root's branch point: 'group' the episode-level baseline over the "
        "roots of the group (GRPO's); 'zero' no advantage"
    )


def copied_turns(table: TurnTable) -> np.ndarray:
    """Per turn row: a branch's copy of one of its parent's turns (turn index < branch_turn), played once, by the
    parent: no loss, and no sample of its own for a baseline."""
    return table.turn_index < table.branch_turn[table.turn_episode]


def branch_sets(table: TurnTable) -> np.ndarray:
    """Per turn row: a dense id of the branch set whose branch point it is (a branch's turn ``branch_turn``, and
    its parent's turn of that index when the parent is in the table), -1 for every other row."""
    ids = np.full(table.num_turn_rows, -1, dtype=np.int64)
    row_of = {str(e): i for i, e in enumerate(table.episode_id.tolist())}
    keys: dict[tuple[str, int], int] = {}
    for e in np.flatnonzero(table.branch_turn >= 0).tolist():
        t, parent = int(table.branch_turn[e]), str(table.parent_id[e])
        if t >= table.num_turns[e]:
            continue  # a branch that recorded no turn of its own (failed at once)
        sid = keys.setdefault((parent, t), len(keys))
        ids[table.turn_offsets[e] + t] = sid
        p = row_of.get(parent)
        if p is not None and t < table.num_turns[p]:
            ids[table.turn_offsets[p] + t] = sid
    return ids


def branch_baseline(table: TurnTable, cfg: BranchBaselineConfig) -> Advantages:
    G = returns_to_go(table, 1.0)  # G_t = sum_{k>=t} r_k per turn row
    sets = branch_sets(table)
    A = np.zeros(table.num_turn_rows)
    # the branch points: A_t = G^b_t - mean_{j in set} G^j_t  (/ (std + eps) for norm="std")
    at = np.flatnonzero(sets >= 0)
    point_adv = np.zeros(table.num_turn_rows)
    point_adv[at] = group_normalize(G[at], sets[at], norm=cfg.norm, eps=cfg.eps, ddof=cfg.std_ddof)
    # every later turn of an episode: the advantage of its deepest branch point at or before it
    copied = copied_turns(table)
    roots = table.branch_turn < 0
    if cfg.prefix == "group" and roots.any():
        groups = table.group_index(cfg.group_key)
        R = table.returns
        root_rows = np.flatnonzero(roots)
        episode_adv = np.zeros(len(table))
        episode_adv[root_rows] = group_normalize(
            R[root_rows], groups[root_rows], norm=cfg.norm, eps=cfg.eps, ddof=cfg.std_ddof
        )
    else:
        episode_adv = np.zeros(len(table))
    for e in range(len(table)):
        current = episode_adv[e] if roots[e] else 0.0  # before the first branch point
        for m in range(int(table.turn_offsets[e]), int(table.turn_offsets[e + 1])):
            if sets[m] >= 0:
                current = point_adv[m]
            A[m] = 0.0 if copied[m] else current
    return turn_advantages(table, A)
