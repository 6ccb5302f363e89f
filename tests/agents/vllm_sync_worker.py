"""Runs under .venv-vllm's python (vLLM is not in the main venv): syncs a trainer's weights into the
in-process ``vllm:`` backend and writes what the probe saw as JSON for tests/agents/test_vllm_sync.py.

    .venv-vllm/bin/python tests/agents/vllm_sync_worker.py MODEL_DIR OUT.json

One engine start per model. ``sync_scenario`` is backend-agnostic: tests/agents/test_weight_sync.py
runs the same steps on the hf backend in the main venv.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from turngym.agents.llm import Backend
from turngym.agents.sampling import SamplingConfig
from turngym.agents.vllm_sync import WeightSyncExtension, pack_weights, unpack_weights

SEQ_LEN = 40
PROMPT_LEN = 16
NOISE = 0.05


class UnfixedSyncExtension(WeightSyncExtension):
    """The sync without the tied-lm_head repair, to show the probe catches the pitfall."""

    def turngym_load_weights_unfixed(self, packed: list) -> int:
        weights = unpack_weights(packed)
        self.reload_weights(weights_iterator=iter(weights), is_checkpoint_format=True)
        return len(weights)


def hf_logprobs(model: Any, ids: list[int]) -> list[float]:
    """log p(ids[k] | ids[:k]) under a transformers model, k = 1..n-1."""
    import torch

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
        return torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0].tolist()


def hf_greedy(model: Any, prompt: list[int], n: int) -> list[int]:
    import torch

    ids = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt) :]


def perturb(params: list[Any], gen: Any) -> None:
    import torch

    with torch.no_grad():
        for p in params:
            p.add_(NOISE * torch.randn(p.shape, generator=gen))


async def probe(backend: Backend, trainer: Any, seq: list[int]) -> dict[str, list[float]]:
    return {"engine": await backend.prompt_logprobs(seq), "hf": hf_logprobs(trainer, seq)}


async def sync_scenario(backend: Backend, model_dir: str, *, unfixed: Any = None) -> dict[str, Any]:
    """Perturb a trainer copy of the served model, sync it in several ways, probe after each.
    ``unfixed``: an async ``load(weights)`` without the tied-head repair (vLLM only)."""
    import torch
    from transformers import AutoModelForCausalLM

    trainer = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    gen = torch.Generator().manual_seed(1234)
    vocab = trainer.config.vocab_size
    seq = torch.randint(3, vocab, (SEQ_LEN,), generator=gen).tolist()
    out: dict[str, Any] = {
        "tied": trainer.lm_head.weight is trainer.model.embed_tokens.weight,
        "state_dict_names": len(trainer.state_dict()),
        "parameter_names": len(list(trainer.named_parameters())),
    }
    out["initial"] = await probe(backend, trainer, seq)

    # 1. every parameter perturbed, synced as state_dict (both tied names, one tensor)
    perturb(list(trainer.parameters()), gen)
    out["stale"] = await probe(backend, trainer, seq)
    await backend.load_weights(trainer.state_dict().items())
    out["state_dict"] = await probe(backend, trainer, seq)
    # generation after the sync samples from the new weights
    prompt = seq[:PROMPT_LEN]
    g = await backend.generate(prompt, SamplingConfig(temperature=0.0, max_new_tokens=8))
    out["greedy"] = {
        "engine_ids": g.ids,
        "engine_logprobs": g.logprobs,
        "hf_ids": hf_greedy(trainer, prompt, len(g.ids)),
        "hf_logprobs": hf_logprobs(trainer, prompt + g.ids)[PROMPT_LEN - 1 :],
    }

    # 2. the pitfall: the tied lm_head is not among named_parameters()
    if unfixed is not None:
        perturb(list(trainer.parameters()), gen)
        await unfixed(trainer.named_parameters())
        out["unfixed"] = await probe(backend, trainer, seq)
    perturb(list(trainer.parameters()), gen)
    out["stale_named"] = await probe(backend, trainer, seq)
    await backend.load_weights(trainer.named_parameters())
    out["named_parameters"] = await probe(backend, trainer, seq)

    # 3. a subset: whole fused groups of one layer and the final norm
    subset = [
        n for n, _ in trainer.named_parameters() if n.startswith("model.layers.1.mlp.") or n == "model.norm.weight"
    ]
    params = dict(trainer.named_parameters())
    perturb([params[n] for n in subset], gen)
    out["stale_subset"] = await probe(backend, trainer, seq)
    await backend.load_weights((n, params[n]) for n in subset)
    out["subset"] = await probe(backend, trainer, seq)
    out["subset_names"] = subset

    # 4. a subset that splits a fused layer (q without k, v): refused by vLLM, the model untouched
    q = "model.layers.0.self_attn.q_proj.weight"
    try:
        await backend.load_weights([(q, params[q].detach() * 0.0)])
        out["split_subset_error"] = None
        with torch.no_grad():
            params[q].zero_()  # the hf backend takes it: keep the trainer in step
    except Exception as e:  # noqa: BLE001 - recorded for the test to check
        out["split_subset_error"] = f"{type(e).__name__}: {e}"
    out["after_split_subset"] = await probe(backend, trainer, seq)
    return out


async def main(model: str, out: str) -> None:
    from turngym.agents.vllm import VLLMBackend

    backend = VLLMBackend(
        model=model, max_model_len=512, worker_extension_cls="tests.agents.vllm_sync_worker.UnfixedSyncExtension"
    )

    async def unfixed(weights: Any) -> None:
        await backend.engine.collective_rpc("turngym_load_weights_unfixed", args=(pack_weights(weights),))
        await backend.engine.reset_prefix_cache(reset_running_requests=True)

    try:
        result = await sync_scenario(backend, model, unfixed=unfixed)
        result["engine_tied"] = bool(backend.engine.model_config.hf_config.tie_word_embeddings)
        # perf: one full sync (state_dict) of the model, median of 5
        from transformers import AutoModelForCausalLM

        trainer = AutoModelForCausalLM.from_pretrained(model)
        times = []
        for _ in range(5):
            t = time.perf_counter()
            await backend.load_weights(trainer.state_dict().items())
            times.append(time.perf_counter() - t)
        packing = []
        for _ in range(5):
            t = time.perf_counter()
            pack_weights(trainer.state_dict().items())
            packing.append(time.perf_counter() - t)
        n_params = sum(p.numel() for p in trainer.parameters())
        result["sync_seconds"] = times
        print(
            f"weight sync {Path(model).name}: {n_params / 1e6:.2f}M params, tied={result['tied']}, "
            f"median {statistics.median(times) * 1e3:.1f} ms over 5 full syncs "
            f"({', '.join(f'{x * 1e3:.1f}' for x in times)} ms); of which packing to bytes "
            f"{statistics.median(packing) * 1e3:.1f} ms",
            flush=True,
        )
    finally:
        await backend.aclose()
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
