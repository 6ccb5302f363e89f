"""Playing episodes with the policy: an iteration's rollouts and the held-out eval.

    episodes = await collect_iteration(cfg, backend, k)   # iteration k's tasks, sampled with iteration k's seed
    result = await evaluate(cfg, backend, store=store, run_dir=run_dir, run_id="eval12")   # the benchmarks evaluator

The engine and its weight sync are in ``engine.py``, the tasks in ``tasks.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from turngym.agents.llm import Backend, LLMAgent
from turngym.agents.runner import EpisodeTask, branch_tasks, run_episodes
from turngym.core.types import Episode
from turngym.trainers.config import TrainConfig
from turngym.trainers.tasks import env_specs, eval_tasks, iteration_seed, train_tasks

if TYPE_CHECKING:
    from turngym.benchmarks.store import EpisodeStore
    from turngym.benchmarks.summary import Summary
    from turngym.distributed.ray_rollout import RolloutPool

__all__ = [
    "EvalResult",
    "PolicyRecipe",
    "collect",
    "collect_iteration",
    "collect_tree",
    "evaluate",
    "make_rollout_agent",
    "require_snapshots",
    "summarize",
]


@dataclass(frozen=True)
class PolicyRecipe:
    """How a Ray rollout worker plays the policy (``rollout.engine: ray``; pickled to the worker): its own engine
    (``make_backend(cfg)``: the run's model, synced after every update) and an agent with the run's sampling,
    seeded per iteration."""

    cfg: TrainConfig

    def build(self) -> Backend:
        from turngym.trainers.engine import make_backend

        return make_backend(self.cfg)

    def agent(self, backend: Backend, seed: int | None) -> LLMAgent:
        return make_rollout_agent(self.cfg, backend, seed=0 if seed is None else seed)

    async def close(self, backend: Backend) -> None:
        await backend.aclose()

    async def load_weights(self, backend: Backend, weights: list[tuple[str, Any]]) -> None:
        await backend.load_weights(weights)

    async def prompt_logprobs(self, backend: Backend, ids: list[int]) -> list[float]:
        return await backend.prompt_logprobs(ids)


def make_rollout_agent(cfg: TrainConfig, backend: Backend, *, seed: int, temperature: float | None = None) -> LLMAgent:
    """An agent over ``backend`` with the run's sampling settings, seeded with ``seed``."""
    update: dict[str, Any] = {"seed": seed}
    if temperature is not None:
        update["temperature"] = temperature
    return LLMAgent(backend=backend, sampling=cfg.sampling.model_copy(update=update), system_prompt=cfg.model.system_prompt)


async def collect(tasks: Sequence[EpisodeTask], agent: LLMAgent, cfg: TrainConfig, *, run_id: str = "") -> list[Episode]:
    return await run_episodes(
        tasks,
        agent,
        concurrency=cfg.rollout.concurrency or len(tasks),
        turn_timeout=cfg.rollout.turn_timeout,
        episode_timeout=cfg.rollout.episode_timeout,
        run_id=run_id,
    )



async def collect_iteration(
    cfg: TrainConfig, backend: Backend, k: int, *, version: int | None = None, pool: RolloutPool | None = None
) -> list[Episode]:
    """Iteration ``k``'s episodes (run_id ``it{k}``): its tasks (``train_tasks``) sampled by the policy with its
    seed (``iteration_seed``), both functions of (run seed, k) only, so a resumed run replays the iteration.
    With ``cfg.branches`` > 1, a tree rollout (``collect_tree``); with ``pool`` (``rollout.engine: ray``), played
    on its Ray rollout workers (each worker's agent seeded with the iteration's seed). Each episode records
    ``policy_version``: the version of the weights the engine serves (default k - 1: the updates before k)."""
    seed = iteration_seed(cfg.seed, k)
    if pool is not None:
        tasks = train_tasks(cfg, k)
        played = await pool.play(
            tasks, concurrency=cfg.rollout.concurrency or len(tasks), turn_timeout=cfg.rollout.turn_timeout,
            episode_timeout=cfg.rollout.episode_timeout, run_id=f"it{k}", seed=seed,
        )
        episodes = played.episodes
        for episode in episodes:
            episode.policy_version = k - 1 if version is None else version
        return episodes
    agent = make_rollout_agent(cfg, backend, seed=seed)
    if cfg.branches > 1:
        turns = np.random.default_rng([cfg.seed, k, 2])
        episodes = await collect_tree(
            train_tasks(cfg, k), agent, cfg, branches=cfg.branches, rng=turns, run_id=f"it{k}"
        )
    else:
        episodes = await collect(train_tasks(cfg, k), agent, cfg, run_id=f"it{k}")
    for episode in episodes:
        episode.policy_version = k - 1 if version is None else version
    return episodes


async def collect_tree(
    tasks: Sequence[EpisodeTask], agent: LLMAgent, cfg: TrainConfig, *, branches: int, rng: np.random.Generator,
    run_id: str = "",
) -> list[Episode]:
    """A tree rollout: ``tasks`` played recording their branch points, then each episode branched at a turn
    drawn uniformly from its turns into ``branches`` continuations (itself and ``branches - 1`` branches,
    turngym.agents.runner.branch_tasks); a failed episode gets none. The episodes come back each root
    followed by its branches."""
    roots = await collect([t.model_copy(update={"branch_points": True}) for t in tasks], agent, cfg, run_id=run_id)
    more: list[EpisodeTask] = []
    for root in roots:
        if root.error is None and root.turns:
            more += branch_tasks(root, int(rng.integers(len(root.turns))), branches - 1)
    grown = await collect(more, agent, cfg, run_id=run_id) if more else []
    children: dict[str, list[Episode]] = {}
    for ep in grown:
        children.setdefault(ep.parent_id, []).append(ep)
    out: list[Episode] = []
    for root in roots:
        root._branch_points = None  # the snapshots and the policy: no longer needed
        out += [root, *children.get(root.episode_id, [])]
    return out


def require_snapshots(cfg: TrainConfig) -> None:
    """Raise ConfigError where a tree rollout (``cfg.branches`` > 1) meets an env that cannot snapshot."""
    from turngym.core.errors import ConfigError
    from turngym.core.registry import make

    for spec in env_specs(cfg):
        env = make(spec.id, **spec.kwargs)
        try:
            reason = getattr(env.unwrapped, "snapshot_unsupported", "it is not a turngym TurnEnv")
        finally:
            env.close()
        if reason is not None:
            setting = (
                f"algorithm branch_baseline (k={cfg.branches})" if cfg.algorithm_name == "branch_baseline"
                else f"rollout.branches={cfg.branches}"
            )
            raise ConfigError(
                f"{setting} plays tree rollouts, which restore env snapshots, and {spec.id} cannot snapshot: {reason}. "
                "Train on an env that supports snapshots (turngym envs check ID runs the snapshot check), or use "
                "another algorithm with rollout.branches: 1"
            )


def summarize(episodes: Sequence[Episode]) -> dict[str, float]:
    """Success rate, mean return, mean turns and the number of failed episodes (turngym.benchmarks.summary's
    figures, computed there once)."""
    from turngym.benchmarks.summary import episode_metrics

    return episode_metrics(episodes)


@dataclass
class EvalResult:
    """A held-out eval: its metrics (``summarize``'s keys), the benchmarks summary (per env) and the episodes."""

    metrics: dict[str, float]
    summary: Summary
    episodes: list[Episode]


async def evaluate(
    cfg: TrainConfig, backend: Backend, *, store: EpisodeStore, run_dir: str | Path, run_id: str = "eval"
) -> EvalResult:
    """The current policy on the held-out seeds (temperature ``eval.temperature``), through the benchmarks
    evaluator (turngym.benchmarks.eval.play): each episode appended to ``store`` under ``run_id`` as it
    finishes, summarised by turngym.benchmarks.summary."""
    from turngym.benchmarks.eval import play
    from turngym.benchmarks.summary import metrics, summarize as summarize_run

    agent = make_rollout_agent(cfg, backend, seed=cfg.seed, temperature=cfg.eval.temperature)
    episodes = await play(
        eval_tasks(cfg), agent, store=store, run_dir=Path(run_dir), run_id=run_id,
        concurrency=cfg.rollout.concurrency or len(eval_tasks(cfg)),
        turn_timeout=cfg.rollout.turn_timeout, episode_timeout=cfg.rollout.episode_timeout,
    )
    names = [spec.id for spec in env_specs(cfg)]
    summary = summarize_run(episodes, order=names, agent=cfg.model.path, suite=cfg.suite or "")
    return EvalResult(metrics=metrics(summary.overall), summary=summary, episodes=episodes)
