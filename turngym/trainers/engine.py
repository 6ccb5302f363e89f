"""The rollout engine of a training run, kept in step with the trainer.

    backend = make_backend(cfg)                                    # hf (transformers) or vllm (in-process)
    diff = await sync_weights(backend, model, probe_ids, tolerance=cfg.probe_tolerance)

``sync_weights`` pushes the trainer's weights (LoRA merged out of place: ``served_weights``) into the
engine, then compares the engine's logprobs on a probe sequence with the trainer's own
(``trainer_logprobs``): above the tolerance the run stops with ``StaleWeightsError`` rather than train
on samples from stale weights.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from turngym.agents.llm import Backend
from turngym.core.errors import StaleWeightsError
from turngym.trainers.config import TrainConfig
from turngym.trainers.losses import token_logprobs

__all__ = [
    "make_backend", "probe_diff", "resolve_device", "served_weights", "sync_pool_weights", "sync_weights",
    "trainer_logprobs",
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
    return probe_diff(mine, await backend.prompt_logprobs(list(probe_ids)), f"the {backend.name} engine", tolerance)


async def sync_pool_weights(pool: Any, model: torch.nn.Module, probe_ids: Sequence[int], *, tolerance: float) -> float:
    """``sync_weights`` for Ray rollouts (``rollout.engine: ray``): every engine (each worker's own, or the engine
    actors) loads the weights (put in Ray's object store once) and answers the probe; the largest difference,
    StaleWeightsError naming the engine above ``tolerance``."""
    await pool.load_weights(served_weights(model))
    mine = trainer_logprobs(model, probe_ids)
    theirs = await pool.prompt_logprobs(list(probe_ids))
    diff = max((probe_diff(mine, t, engine, tolerance) for engine, t in theirs.items()), default=0.0)
    # a worker or engine restarted later must pass the same probe
    await pool.expect(list(probe_ids), functools.partial(probe_diff, mine, tolerance=tolerance))
    return diff


def probe_diff(mine: Sequence[float], theirs: Sequence[float], engine: str, tolerance: float) -> float:
    """max |mine - theirs| over the probe's tokens; StaleWeightsError above ``tolerance``."""
    if len(theirs) != len(mine):
        raise StaleWeightsError(f"the probe got {len(theirs)} logprobs from {engine} for {len(mine)} tokens")
    diff = float(np.max(np.abs(np.asarray(mine) - np.asarray(theirs)))) if mine else 0.0
    if not diff <= tolerance:
        raise StaleWeightsError(
            f"after the weight sync {engine}'s logprobs differ from the trainer's by up to "
            f"{diff:.4g} (tolerance {tolerance:g}) on a {len(mine) + 1}-token probe: the engine is not serving "
            "the new weights (a failed or partial load, or weights it keeps in another form, e.g. tied "
            "embeddings); the run stops rather than train on stale samples. Check the backend's load_weights, "
            "or raise probe_tolerance if the engine's numerics differ (bf16)."
        )
    return diff
