"""Advantage estimators: pure functions of the turn table (RESEARCH.md sections 2-4).

    from turngym.trainers.advantages import ESTIMATORS, GiGPOConfig, StarPOFilter, compute_advantages
    adv = compute_advantages(table, GiGPOConfig(anchors="fuzzy"), filter=StarPOFilter(keep_fraction=0.5))
    batch = collate_episodes(table, np.flatnonzero(adv.keep), token_columns={"advantages": adv.token})

``ESTIMATORS`` maps a name to ``(function, config class)``; every function is ``fn(table, config)``
returning ``Advantages`` (``bilevel_gae`` also takes ``values=``, the critic's per-token values).
``EstimatorSpec`` is the tagged union of the configs, for YAML (``{name: gigpo, omega: 1.0}``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Union

import numpy as np
from pydantic import BaseModel, Field, TypeAdapter

from turngym.core.errors import did_you_mean
from turngym.trainers.advantages.base import Advantages, EstimatorConfig, group_normalize, returns_to_go
from turngym.trainers.advantages.bilevel_gae import BilevelGAEConfig, TurnCriticConfig, bilevel_gae
from turngym.trainers.advantages.branch_baseline import BranchBaselineConfig, branch_baseline
from turngym.trainers.advantages.filters import StarPOFilter, starpo_s_keep
from turngym.trainers.advantages.flow_grpo import FlowGRPOConfig, flow_grpo
from turngym.trainers.advantages.gigpo import GiGPOConfig, gigpo
from turngym.trainers.advantages.grpo import GRPOConfig, RLOOConfig, grpo, rloo
from turngym.trainers.advantages.mt_grpo import MTGRPOConfig, mt_grpo
from turngym.trainers.table import TurnTable

__all__ = [
    "ESTIMATORS",
    "NEEDS_VALUES",
    "Advantages",
    "BilevelGAEConfig",
    "BranchBaselineConfig",
    "EstimatorConfig",
    "EstimatorSpec",
    "FlowGRPOConfig",
    "GRPOConfig",
    "GiGPOConfig",
    "MTGRPOConfig",
    "RLOOConfig",
    "StarPOFilter",
    "TurnCriticConfig",
    "bilevel_gae",
    "branch_baseline",
    "compute_advantages",
    "estimator_config",
    "flow_grpo",
    "gigpo",
    "group_normalize",
    "grpo",
    "mt_grpo",
    "returns_to_go",
    "rloo",
    "starpo_s_keep",
]

ESTIMATORS: dict[str, tuple[Callable[..., Advantages], type[EstimatorConfig]]] = {
    "grpo": (grpo, GRPOConfig),
    "rloo": (rloo, RLOOConfig),
    "flow_grpo": (flow_grpo, FlowGRPOConfig),
    "mt_grpo": (mt_grpo, MTGRPOConfig),
    "gigpo": (gigpo, GiGPOConfig),
    "bilevel_gae": (bilevel_gae, BilevelGAEConfig),
    "branch_baseline": (branch_baseline, BranchBaselineConfig),
}
#: estimators that need the critic's values (the on-policy loop trains a value_head.TurnCritic for them)
NEEDS_VALUES = frozenset({"bilevel_gae"})

EstimatorSpec = Annotated[
    Union[GRPOConfig, RLOOConfig, FlowGRPOConfig, MTGRPOConfig, GiGPOConfig, BilevelGAEConfig, BranchBaselineConfig],
    Field(discriminator="name"),
]
_SPEC = TypeAdapter(EstimatorSpec)


def estimator_config(spec: EstimatorConfig | BaseModel | Mapping[str, Any] | str) -> EstimatorConfig:
    """The config of an estimator from a typed config (returned as it is, e.g. ``TrainConfig.algorithm``),
    a name, or a dict such as ``{"name": "gigpo", "omega": 0.5}``."""
    if isinstance(spec, EstimatorConfig):
        return spec
    if isinstance(spec, BaseModel):  # another algorithm's config, such as ArcherConfig
        spec = {"name": getattr(spec, "name", type(spec).__name__)}
    if isinstance(spec, str):
        spec = {"name": spec}
    name = spec.get("name")
    if name not in ESTIMATORS:
        raise ValueError(
            f"unknown advantage estimator {name!r}.{did_you_mean(name, ESTIMATORS)} "
            f"The estimators are {', '.join(ESTIMATORS)}."
        )
    return _SPEC.validate_python(dict(spec))


def compute_advantages(
    table: TurnTable,
    cfg: EstimatorConfig,
    *,
    values: np.ndarray | None = None,
    filter: StarPOFilter | None = None,  # noqa: A002 - the name users know
) -> Advantages:
    """Run the estimator of ``cfg`` on ``table``, after the StarPO-S ``filter`` if given: the estimator
    then sees only the kept groups, and the dropped episodes get ``keep=False`` and advantages 0."""
    name = getattr(cfg, "name", None)
    if name not in ESTIMATORS:
        raise ValueError(
            f"unknown advantage estimator {name!r}.{did_you_mean(name, ESTIMATORS)} "
            f"The estimators are {', '.join(ESTIMATORS)}."
        )
    fn = ESTIMATORS[name][0]
    if (values is not None) != (name in NEEDS_VALUES):
        raise ValueError(
            f"estimator {name!r} {'needs' if name in NEEDS_VALUES else 'takes no'} critic values: "
            + ("pass values= (one per token)" if name in NEEDS_VALUES else "drop values=")
        )

    def run(t: TurnTable, v: np.ndarray | None) -> Advantages:
        return fn(t, cfg, values=v) if name in NEEDS_VALUES else fn(t, cfg)

    if filter is None:
        return run(table, values)
    keep = starpo_s_keep(table, filter)
    rows = np.flatnonzero(keep)
    turn_idx, tok_idx = table.turn_rows_of(rows), table.token_positions_of(rows)
    sub = run(table.select(rows), None if values is None else np.asarray(values)[tok_idx])
    turn = np.zeros(table.num_turn_rows)
    token = np.zeros(len(table.tokens))
    turn[turn_idx], token[tok_idx] = sub.turn, sub.token
    returns = None
    if sub.returns is not None:
        returns = np.zeros(len(table.tokens))
        returns[tok_idx] = sub.returns
    return Advantages(turn=turn, token=token, keep=keep, returns=returns)
