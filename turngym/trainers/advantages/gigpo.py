"""GiGPO: Group-in-Group Policy Optimization (Feng et al. 2025, "Group-in-Group Policy Optimization
for LLM Agent Training", verl-agent; RESEARCH.md section 4b).

Two levels of groups inside one group of G episodes:

- episode level: A^E_i = (R_i - mean_j R_j) / F, F = std_j R_j + eps (``norm="std"``) or 1 (``"mean"``,
  the paper's "mean_norm");
- step level: anchor groups are the (episode, turn) pairs of the group whose state (the observation the
  agent answered) is the same: exact text hash, or fuzzy (difflib ratio >= ``similarity``, greedy
  clustering against the first member as in verl-agent), or, on a tree rollout (rollout.branches),
  ``"tree"``: the members of each branch point (one env state restored from one snapshot: the same state
  by construction, where equal text may hide different histories). A branch's copies of its parent's
  turns join no anchor group (they are no samples of their own). With return-to-go
  R_t = sum_{k>=t} gamma^(k-t) r_k: A^S = (R_t - mean_anchor R) / F; an anchor group of one gives 0.

A = A^E + omega * A^S. The paper takes the episode statistics over trajectories; verl-agent's code over
all step rows of the group (``episode_stats="turn_rows"``).
"""

from __future__ import annotations

import hashlib
from difflib import SequenceMatcher
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
from turngym.trainers.advantages.branch_baseline import branch_sets, copied_turns
from turngym.trainers.table import TurnTable


class GiGPOConfig(EstimatorConfig):
    """``algorithm: gigpo``: A = A^E (episode level) + omega * A^S (step level, over anchor states)."""

    name: Literal["gigpo"] = "gigpo"
    norm: Norm = Field("std", description="'std': divide by the group std (+ eps); 'mean': subtract the group mean only")
    gamma: float = Field(0.95, description="discount of the step-level return-to-go")
    omega: float = Field(1.0, description="weight of the step-level advantage A^S")
    anchors: Literal["exact", "fuzzy", "tree"] = Field(
        "exact", description="which states share an anchor group: the same text ('exact'), similar text ('fuzzy'), "
        "or the same branch point of a tree rollout ('tree': the same env state by construction)"
    )
    similarity: float = Field(
        0.95, gt=0.0, le=1.0, description="fuzzy anchors: the difflib SequenceMatcher ratio two states need"
    )
    episode_stats: Literal["trajectories", "turn_rows"] = Field(
        "trajectories",
        description="the episode-level statistics over the G trajectories (the paper) or all step rows (verl-agent)",
    )


def text_hash(text: str) -> str:
    """The exact anchor key of a state: a hash of its text."""
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def anchor_groups(
    states: np.ndarray, groups: np.ndarray, *, anchors: Literal["exact", "fuzzy"] = "exact", similarity: float = 0.95
) -> np.ndarray:
    """Dense anchor-group ids of turn rows: the same episode group and the same state (exact or fuzzy)."""
    ids = np.empty(len(states), dtype=np.int64)
    exact: dict[tuple[int, str], int] = {}
    fuzzy: dict[int, list[tuple[str, int]]] = {}  # episode group -> [(representative text, anchor id)]
    n_fuzzy = 0
    for m, (g, text) in enumerate(zip(groups.tolist(), states.tolist(), strict=True)):
        if anchors == "exact":
            ids[m] = exact.setdefault((g, text_hash(text)), len(exact))
            continue
        clusters = fuzzy.setdefault(g, [])
        match = next(
            (cid for rep, cid in clusters if rep == text or SequenceMatcher(None, rep, text).ratio() >= similarity),
            None,
        )
        if match is None:
            match = n_fuzzy
            n_fuzzy += 1
            clusters.append((text, match))
        ids[m] = match
    return ids


def step_anchors(table: TurnTable, groups: np.ndarray, cfg: GiGPOConfig) -> np.ndarray:
    """Dense anchor-group ids of the turn rows (``groups``: each row's episode group): by state text, or by
    branch point (``anchors="tree"``); a branch's copies of its parent's turns are groups of one."""
    alone = copied_turns(table)
    if cfg.anchors == "tree":
        sets = branch_sets(table)
        alone |= sets < 0
        keys = np.where(alone, -1 - np.arange(table.num_turn_rows), sets)
        return np.unique(keys, return_inverse=True)[1].astype(np.int64)
    ids = anchor_groups(table.state_text, groups, anchors=cfg.anchors, similarity=cfg.similarity)
    if alone.any():
        ids = np.where(alone, ids.max(initial=-1) + 1 + np.arange(table.num_turn_rows), ids)
    return ids


def gigpo(table: TurnTable, cfg: GiGPOConfig) -> Advantages:
    groups = table.group_index(cfg.group_key)
    ep = table.turn_episode
    norm = dict(norm=cfg.norm, eps=cfg.eps, ddof=cfg.std_ddof)
    # A^E_i = (R_i - mean_j R_j) / F
    if cfg.episode_stats == "trajectories":
        A_E = group_normalize(table.returns, groups, **norm)[ep]
    else:
        A_E = group_normalize(table.returns[ep], groups[ep], **norm)
    # A^S = (R_t - mean_{anchor} R) / F,  R_t = sum_{k>=t} gamma^(k-t) r_k
    anchor = step_anchors(table, groups[ep], cfg)
    A_S = group_normalize(returns_to_go(table, cfg.gamma), anchor, **norm)
    # A = A^E + omega * A^S
    return turn_advantages(table, A_E + cfg.omega * A_S)
