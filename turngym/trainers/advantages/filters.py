"""StarPO-S variance filter (RAGEN, Wang et al. 2025; RESEARCH.md section 4d), an option on any estimator.

Keep the groups whose episode returns vary most (the top ``keep_fraction`` of groups by variance;
at least one group): a group whose episodes all scored the same gives no signal. Ties keep the
earlier group. As RAGEN's ``topk``, the number kept is floor(keep_fraction * n_groups).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from turngym.trainers.table import GroupKey, TurnTable


class StarPOFilter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    keep_fraction: float = Field(0.25, gt=0.0, le=1.0)
    group_key: GroupKey = "group_id"


def starpo_s_keep(table: TurnTable, cfg: StarPOFilter) -> np.ndarray:
    """(E,) bool: the episodes of the kept groups."""
    groups = table.group_index(cfg.group_key)
    n_groups = int(groups.max(initial=-1)) + 1
    if n_groups == 0:
        return np.zeros(0, dtype=bool)
    R = table.returns
    n = np.bincount(groups, minlength=n_groups)
    mean = np.bincount(groups, weights=R, minlength=n_groups) / n
    var = np.bincount(groups, weights=(R - mean[groups]) ** 2, minlength=n_groups) / n  # Var_j R_j per group
    k = max(1, math.floor(cfg.keep_fraction * n_groups + 1e-9))
    kept = np.argsort(-var, kind="stable")[:k]
    return np.isin(groups, kept)
