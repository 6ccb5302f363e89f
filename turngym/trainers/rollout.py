"""What every trainer does around its update: the rollout backend, the tasks of an iteration, the
episodes, the weight sync with its logprob probe, and the held-out eval.

    backend = make_backend(cfg)
    episodes = await collect(train_tasks(cfg, iteration), make_rollout_agent(cfg, backend, seed=s), cfg)
    diff = await sync_weights(backend, model, probe_ids, tolerance=cfg.probe_tolerance)
    result = await evaluate(cfg, backend, store=store, run_dir=run_dir, run_id="eval12")   # the benchmarks evaluator

Training seeds come from a generator seeded with (run seed, iteration), so the tasks of iteration k
are the same in an uninterrupted and in a resumed run; eval seeds are held out (see config.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from turngym.agents.llm import Backend, LLMAgent
from turngym.agents.runner import EpisodeTask, group_tasks, run_episodes
from turngym.agents.sampling import TokenFSM, vocabulary
from turngym.core.errors import ConfigError, StaleWeightsError
from turngym.core.types import Episode
from turngym.trainers.config import EnvSpec, TrainConfig
from turngym.trainers.losses import token_logprobs

if TYPE_CHECKING:
    from turngym.benchmarks.store import EpisodeStore
    from turngym.benchmarks.summary import Summary

__all__ = [
    "EvalResult",
    "StaleWeightsError",
    "action_fsms",
    "collect",
    "env_specs",
    "eval_tasks",
    "evaluate",
    "make_backend",
    "make_rollout_agent",
    "resolve_device",
    "served_weights",
    "summarize",
    "sync_weights",
    "train_tasks",
]


def resolve_device(cfg: TrainConfig) -> torch.device:
    if cfg.model.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.model.device)


def make_backend(cfg: TrainConfig) -> Backend:
    """The rollout engine of ``cfg.model``: hf (transformers) or vllm (in-process engine)."""
    opts = dict(cfg.model.backend_options)
    if cfg.model.backend == "hf":
        from turngym.agents.hf import HFBackend

        opts.setdefault("max_batch", max(64, cfg.rollout.groups * cfg.rollout.group_size))
        return HFBackend(model=cfg.model.path, device=str(resolve_device(cfg)), **opts)
    from turngym.agents.vllm import VLLMBackend

    return VLLMBackend(model=cfg.model.path, **opts)


def make_rollout_agent(cfg: TrainConfig, backend: Backend, *, seed: int, temperature: float | None = None) -> LLMAgent:
    """An agent over ``backend`` with the run's sampling settings, seeded with ``seed``."""
    update: dict[str, Any] = {"seed": seed}
    if temperature is not None:
        update["temperature"] = temperature
    return LLMAgent(backend=backend, sampling=cfg.sampling.model_copy(update=update), system_prompt=cfg.model.system_prompt)


def env_specs(cfg: TrainConfig) -> list[EnvSpec]:
    """The envs of the run: ``env``, or every env of ``suite``."""
    if cfg.env is not None:
        return [cfg.env]
    from turngym.benchmarks.suite import load_suite

    suite = load_suite(cfg.suite)
    return [EnvSpec(id=e.id, kwargs=dict(e.kwargs), max_turns=e.max_turns) for e in suite.envs]


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


async def collect(tasks: Sequence[EpisodeTask], agent: LLMAgent, cfg: TrainConfig, *, run_id: str = "") -> list[Episode]:
    return await run_episodes(
        tasks,
        agent,
        concurrency=cfg.rollout.concurrency or len(tasks),
        turn_timeout=cfg.rollout.turn_timeout,
        episode_timeout=cfg.rollout.episode_timeout,
        run_id=run_id,
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


def action_fsms(cfg: TrainConfig, backend: Backend) -> dict[str, TokenFSM]:
    """env id -> the automaton of its action pattern over the tokenizer (for constrained training)."""
    import turngym

    tok = backend.tokenizer
    vocab = vocabulary(tok)
    eos = sorted(getattr(backend, "eos_ids", None) or [tok.eos_token_id])
    out: dict[str, TokenFSM] = {}
    for spec in env_specs(cfg):
        env = turngym.make(spec.id, **spec.kwargs)
        try:
            fmt = getattr(env.unwrapped, "action_format", None)
            pattern = fmt.pattern() if fmt is not None else None
        finally:
            env.close()
        if pattern is None:
            raise ConfigError(
                f"sampling.constrain=true but {spec.id}'s action format has no pattern: set sampling.constrain=false"
            )
        out[spec.id] = TokenFSM.build(pattern, vocab, eos_ids=eos, canonical=tok if cfg.sampling.canonical else None)
    return out


def served_weights(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The weights the rollout engine serves, named as the plain HF model's ``state_dict``: with LoRA
    (peft) each adapted weight is W + delta(B A) computed out of place (merging in place and back
    would drift the base weights by rounding)."""
    if not hasattr(model, "peft_config"):
        return [(n, t.detach()) for n, t in model.state_dict().items()]
    from peft.tuners.lora import LoraLayer

    weights = {
        n.removeprefix("base_model.model.").replace(".base_layer.", "."): t.detach()
        for n, t in model.state_dict().items()
        if "lora_" not in n
    }
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, LoraLayer) and module.active_adapters:
                key = name.removeprefix("base_model.model.") + ".weight"
                merged = weights[key].clone()
                for adapter in module.active_adapters:
                    merged += module.get_delta_weight(adapter).to(merged.dtype)
                weights[key] = merged
    return list(weights.items())


@torch.no_grad()
def trainer_logprobs(model: torch.nn.Module, ids: Sequence[int]) -> list[float]:
    device = next(model.parameters()).device
    x = torch.tensor([list(ids)], device=device)
    was = model.training
    model.eval()
    logp = token_logprobs(model(input_ids=x).logits, x)[0, 1:]
    model.train(was)
    return [float(v) for v in logp.cpu()]


async def sync_weights(
    backend: Backend, model: torch.nn.Module, probe_ids: Sequence[int], *, tolerance: float
) -> float:
    """Push the trainer's weights into ``backend`` and probe: the max |logprob| difference between the
    engine and the trainer on ``probe_ids``. Raises ``StaleWeightsError`` above ``tolerance``."""
    await backend.load_weights(served_weights(model))
    mine = trainer_logprobs(model, probe_ids)
    theirs = await backend.prompt_logprobs(list(probe_ids))
    if len(theirs) != len(mine):
        raise StaleWeightsError(f"the probe got {len(theirs)} logprobs from the engine for {len(mine)} tokens")
    diff = float(np.max(np.abs(np.asarray(mine) - np.asarray(theirs)))) if mine else 0.0
    if not diff <= tolerance:
        raise StaleWeightsError(
            f"after the weight sync the {backend.name} engine's logprobs differ from the trainer's by up to "
            f"{diff:.4g} (tolerance {tolerance:g}) on a {len(probe_ids)}-token probe: the engine is not serving "
            "the new weights (a failed or partial load, or weights it keeps in another form, e.g. tied "
            "embeddings); the run stops rather than train on stale samples. Check the backend's load_weights, "
            "or raise probe_tolerance if the engine's numerics differ (bf16)."
        )
    return diff
