"""``turngym train``: load a run's config and hand it to its trainer.

    cfg = train_config("gn.yaml", overrides=["optim.lr=1e-5"])
    summary = make_trainer(cfg).run(resume=False)

``algorithm: archer`` goes to ArCHer (turngym.trainers.archer); every other name is an advantage
estimator of the on-policy loop (turngym.trainers.onpolicy).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from turngym.core.config import load_config
from turngym.trainers.config import TrainConfig

__all__ = ["make_trainer", "train_config"]


def train_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> TrainConfig:
    return load_config(TrainConfig, path, overrides=list(overrides))


def make_trainer(cfg: TrainConfig) -> Any:
    """The trainer of ``cfg.algorithm``: an object with ``run(resume=..., progress=...) -> dict``."""
    if cfg.algorithm_name == "archer":
        from turngym.trainers.archer.trainer import ArcherTrainer

        return ArcherTrainer(cfg)
    from turngym.trainers.onpolicy import OnPolicyTrainer

    return OnPolicyTrainer(cfg)
