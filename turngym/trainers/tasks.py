"""The task instances of a training run: an iteration's groups and the held-out eval seeds.

    tasks = train_tasks(cfg, k)      # rollout.groups x rollout.group_size episodes, seeds drawn for (run seed, k)
    seed = iteration_seed(cfg.seed, k)   # the sampling seed of iteration k
    tasks = eval_tasks(cfg)          # one episode per held-out seed per env

Training seeds come from a generator seeded with (run seed, iteration), so the tasks of iteration k
are the same in an uninterrupted and in a resumed run; eval seeds are held out: they start at
``eval.seed_offset``, and training seeds are drawn below it (see config.py).
"""

from __future__ import annotations

import numpy as np

from turngym.agents.runner import EpisodeTask, group_tasks
from turngym.trainers.config import EnvSpec, TrainConfig

__all__ = ["env_specs", "eval_tasks", "iteration_seed", "train_tasks"]


def env_specs(cfg: TrainConfig) -> list[EnvSpec]:
    """The envs of the run: ``env``, or every env of ``suite``."""
    if cfg.env is not None:
        return [cfg.env]
    from turngym.benchmarks.suite import load_suite

    suite = load_suite(cfg.suite)
    return [EnvSpec(id=e.id, kwargs=dict(e.kwargs), max_turns=e.max_turns) for e in suite.envs]


def iteration_seed(seed: int, iteration: int) -> int:
    """The sampling seed of iteration ``iteration``: a function of the run seed and k only."""
    return int(np.random.default_rng([seed, iteration, 1]).integers(2**31))


def train_tasks(cfg: TrainConfig, iteration: int) -> list[EpisodeTask]:
    """``rollout.groups`` groups of ``group_size`` episodes, seeds drawn for (run seed, iteration)."""
    specs = env_specs(cfg)
    rng = np.random.default_rng([cfg.seed, iteration])
    tasks: list[EpisodeTask] = []
    for g in range(cfg.rollout.groups):
        spec = specs[g % len(specs)]
        seed = int(rng.integers(0, cfg.eval.seed_offset))
        tasks += group_tasks(
            spec.id, [seed], group_size=cfg.rollout.group_size, env_kwargs=spec.kwargs,
            max_turns=spec.max_turns, prefix=f"it{iteration}/g{g}",
        )
    return tasks


def eval_tasks(cfg: TrainConfig) -> list[EpisodeTask]:
    """One episode per held-out seed per env."""
    seeds = range(cfg.eval.seed_offset, cfg.eval.seed_offset + cfg.eval.seeds)
    tasks: list[EpisodeTask] = []
    for spec in env_specs(cfg):
        tasks += group_tasks(spec.id, seeds, env_kwargs=spec.kwargs, max_turns=spec.max_turns, prefix=f"eval/{spec.id}")
    return tasks
