"""Weight sync into the in-process vLLM engine: a worker extension the ``vllm`` backend installs.

    backend = VLLMBackend(model=DIR)                   # engine args carry worker_extension_cls
    await backend.load_weights(model.state_dict().items())   # HF names, full set or a subset
    await backend.prompt_logprobs(ids)                 # the probe: log p(ids[k] | ids[:k])

The trainer's tensors cross to the engine-core process (vLLM 0.32 runs it in its own process) as
``(name, dtype, shape, bytes)`` records inside one ``collective_rpc`` call: vLLM's msgpack encoder
only rebuilds tensors for fields it knows are tensors, and the arguments of a utility call are
untyped, so a raw tensor would arrive as an unusable buffer index. One call per sync also keeps the
update atomic: the engine core runs utility calls between model steps, never during one.

On the worker, ``WeightSyncExtension.turngym_load_weights`` reloads in place with vLLM's layerwise
reload (``Worker.reload_weights(is_checkpoint_format=True)``): each layer is rebuilt in checkpoint
format, the HF tensors go through the model's own ``load_weights`` (name mapping, q/k/v and
gate/up fusing), ``process_weights_after_loading`` runs again and the result is copied into the
tensors the engine already holds. A plain ``model.load_weights`` is not enough on CPU: the CPU
platform hands every linear layer's weight to a oneDNN (or SGL) GEMM at load time, packing a copy
of it, and replaces the layer's weight by an empty tensor, so only a re-run of the processing
step reaches what the kernels read.

The tied-embedding pitfall (``tie_word_embeddings=True``): in vLLM ``lm_head.weight`` *is*
``model.embed_tokens.weight`` (one ``Parameter``), but each of the two layers has its own
processing step. On CPU, ``UnquantizedEmbeddingMethod.process_weights_after_loading`` calls
``dispatch_cpu_unquantized_gemm(layer, remove_weight=False)``, which gives the layer a GEMM
(``layer.cpu_linear``) around a oneDNN handle holding its own packed copy of the weight; for the
lm_head that GEMM computes the logits. A reload re-runs a layer's processing only when that layer
receives a tensor, and a tied HF model lists its embedding once (``named_parameters()``, or any
state dict without the duplicate name). So only ``embed_tokens`` is reloaded: the shared
``Parameter`` gets the new values (the input embeddings are right), the lm_head keeps its GEMM over
the packed copy of the weights the engine started with, and every logprob is off (measured on the
tiny tied model: max |logprob - trainer's| 0.87 after such a sync; the lm_head's GEMM differed from
``F.linear`` over its own weight by 1.7). Sending ``lm_head.weight`` too happens to work (the
layerwise reload gives the two layers separate meta tensors, so the head is reloaded and
repacked), but a trainer should not have to know. The fix (``_refresh_tied_heads``): after every
reload, re-run the processing step of each ``lm_head`` whose weight is an embedding's weight, so
its GEMM is rebuilt from the served tensor.

Subsets: a sync may send any subset of the HF names, but a fused vLLM layer must get all its
parts (``q_proj``, ``k_proj`` and ``v_proj`` together; ``gate_proj`` with ``up_proj``): the
reload rebuilds a layer from what it receives, and a missing part would be left uninitialised.
The backend refuses such a subset with a ``ValueError`` before sending it (the worker checks too).
Not checked: a layer's bias sent without its weight (the weight would be left uninitialised the
same way), so send layers whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["WeightSyncExtension", "check_fused_parts", "fused_parts_missing", "pack_weights", "unpack_weights"]

#: an HF tensor on the wire: (name, dtype name, shape, raw bytes)
Packed = tuple[str, str, list[int], bytes]


def pack_weights(weights: Iterable[tuple[str, Any]]) -> list[Packed]:
    """``(name, tensor)`` pairs as plain records vLLM's IPC carries (tensors copied to CPU)."""
    import torch

    out: list[Packed] = []
    for name, tensor in weights:
        t = tensor.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""  # bf16 too
        out.append((name, str(t.dtype).removeprefix("torch."), list(t.shape), raw))
    return out


def unpack_weights(packed: Iterable[Packed]) -> list[tuple[str, Any]]:
    """The inverse of ``pack_weights``."""
    import torch

    out = []
    for name, dtype, shape, raw in packed:
        dt = getattr(torch, dtype)
        t = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dt) if raw else torch.empty(0, dtype=dt)
        out.append((name, t.reshape(shape)))
    return out


def fused_parts_missing(names: Iterable[str], packed_modules: dict[str, list[str]]) -> list[str]:
    """HF names a subset lacks to fill the fused layers it touches (``packed_modules``: vLLM's
    ``packed_modules_mapping``, e.g. ``{"qkv_proj": ["q_proj", "k_proj", "v_proj"]}``)."""
    have = set(names)
    missing: set[str] = set()
    for name in have:
        for parts in packed_modules.values():
            for part in parts:
                token = f".{part}."
                if token in name:
                    for other in parts:
                        sibling = name.replace(token, f".{other}.")
                        if sibling not in have:
                            missing.add(sibling)
    return sorted(missing)


def check_fused_parts(names: Iterable[str], packed_modules: dict[str, list[str]]) -> None:
    """Raise ``ValueError`` when a subset splits a fused layer (see the module docstring)."""
    missing = fused_parts_missing(names, packed_modules)
    if missing:
        raise ValueError(
            f"the weight subset lacks {missing[:6]}{' ...' if len(missing) > 6 else ''}: vLLM fuses them with "
            "tensors it got and rebuilds a fused layer only from all its parts; send those tensors too"
        )


class WeightSyncExtension:
    """Mixed into vLLM's worker class (``worker_extension_cls``); called by ``collective_rpc``."""

    def turngym_fused_groups(self) -> dict[str, list[str]]:
        """The model's fused layers: vLLM name -> the HF names fused into it."""
        model = self.model_runner.get_model()  # type: ignore[attr-defined]
        return {k: list(v) for k, v in (getattr(model, "packed_modules_mapping", None) or {}).items()}

    def turngym_load_weights(self, packed: list[Packed]) -> int:
        """Reload the HF-named tensors in ``packed`` in place; returns how many were given."""
        weights = unpack_weights(packed)
        model = self.model_runner.get_model()  # type: ignore[attr-defined]
        check_fused_parts((n for n, _ in weights), self.turngym_fused_groups())
        self.reload_weights(weights_iterator=iter(weights), is_checkpoint_format=True)  # type: ignore[attr-defined]
        _refresh_tied_heads(model)
        return len(weights)


def _refresh_tied_heads(model: Any) -> int:
    """Rebuild the logits GEMM of each lm_head that shares its weight with an input embedding
    (see the module docstring); returns how many were rebuilt."""
    from vllm.model_executor.layers.vocab_parallel_embedding import (
        ParallelLMHead,
        VocabParallelEmbedding,
    )

    embeddings = {
        id(m.weight) for m in model.modules() if isinstance(m, VocabParallelEmbedding) and not isinstance(m, ParallelLMHead)
    }
    n = 0
    for module in model.modules():
        if isinstance(module, ParallelLMHead) and id(module.weight) in embeddings:
            module.quant_method.process_weights_after_loading(module)
            n += 1
    return n
