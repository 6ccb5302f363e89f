"""The batch's KV cache. A batch mixes cached lengths and new lengths: its KV is laid out per row as
[pad | cached KV | pad | new tokens], with a 2D attention mask that has a hole between the two parts
and per-row position ids (the real positions). The KV lives in one buffer per layer, as wide as the
batch will grow, so no forward pass copies the whole cache to append to it: ``buffered_cache`` is a
transformers ``Cache`` built from ``BufferedLayer``s through its public constructor (``layers=``),
passed to the model under the name its ``forward`` takes (``cache_argument``). Models with a sliding window (``full_attention`` false)
prefill every prompt whole, since a window counts cache columns and this layout has holes."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from transformers.cache_utils import Cache, DynamicLayer

if TYPE_CHECKING:
    from turngym.agents.hf.prefix_cache import Prefix

__all__ = ["BufferedLayer", "buffered_cache", "cache_argument", "full_attention", "stack_prefixes"]


class BufferedLayer(DynamicLayer):
    """A ``DynamicLayer`` that writes into ``width``-column buffers (grown by doubling if a chunk
    overflows them) instead of concatenating its whole cache on each update. ``keys``/``values``:
    buffers whose first ``filled`` columns hold KV already."""

    def __init__(self, width: int, keys: Any = None, values: Any = None, filled: int = 0) -> None:
        super().__init__()
        self._width, self._k, self._v, self._n = width, keys, values, 0
        if keys is not None:
            self.lazy_initialization(keys, values)
            self._n = filled
            self.keys, self.values = keys[:, :, :filled], values[:, :, :filled]

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        import torch

        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            b, h, _, d = key_states.shape
            self._k = key_states.new_zeros((b, h, self._width, d))
            self._v = value_states.new_zeros((b, h, self._width, value_states.shape[-1]))
        n = self._n + key_states.shape[-2]
        if n > self._k.shape[2]:  # jump-forward chunks can outgrow the planned width
            grow = max(n, 2 * self._k.shape[2]) - self._k.shape[2]
            self._k = torch.cat([self._k, self._k.new_zeros((*self._k.shape[:2], grow, self._k.shape[3]))], dim=2)
            self._v = torch.cat([self._v, self._v.new_zeros((*self._v.shape[:2], grow, self._v.shape[3]))], dim=2)
        self._k[:, :, self._n : n] = key_states
        self._v[:, :, self._n : n] = value_states
        self._n = n
        self.keys, self.values = self._k[:, :, :n], self._v[:, :, :n]
        return self.keys, self.values


def buffered_cache(layers: int, width: int, past: list[tuple[Any, Any]] | None = None, filled: int = 0) -> Cache:
    """A cache of ``layers`` ``BufferedLayer``s ``width`` columns wide; ``past``: per layer, buffers
    whose first ``filled`` columns are set (from ``stack_prefixes``)."""
    if past is None:
        return Cache(layers=[BufferedLayer(width) for _ in range(layers)])
    if len(past) != layers:
        raise ValueError(f"kept KV has {len(past)} layers, the model {layers}")
    return Cache(layers=[BufferedLayer(width, k, v, filled) for k, v in past])


def stack_prefixes(hits: list[Prefix | None], filled: int, width: int) -> list[tuple[Any, Any]]:
    """Per layer, ``width``-column KV buffers holding each row's kept KV right-aligned in the first
    ``filled`` columns (zeros where masked); at least one of ``hits`` is not ``None``."""
    first = next(h for h in hits if h is not None)
    layers = []
    for layer, (k0, v0) in enumerate(first.kv):
        keys = k0.new_zeros((len(hits), k0.shape[0], width, k0.shape[2]))
        values = v0.new_zeros((len(hits), v0.shape[0], width, v0.shape[2]))
        for i, h in enumerate(hits):
            if h is not None:
                k, v = h.kv[layer]
                keys[i, :, filled - k.shape[1] : filled] = k
                values[i, :, filled - v.shape[1] : filled] = v
        layers.append((keys, values))
    return layers


def full_attention(config: Any) -> bool:
    """True if every layer attends to all earlier tokens (no sliding window, no other layer kind)."""
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    if any(t != "full_attention" for t in getattr(text, "layer_types", None) or ()):
        return False
    return getattr(text, "sliding_window", None) is None or getattr(text, "use_sliding_window", True) is False


def cache_argument(model: Any) -> str:
    """The keyword under which ``model.forward`` takes a ``Cache``: ``cache`` in transformers releases
    that renamed it (``past_key_values`` is deprecated there, to go in 5.40), ``past_key_values``
    in earlier ones. Pass the cache as ``model(..., **{cache_argument(model): cache})``. A PEFT
    wrapper passes its keyword arguments through: its base model's ``forward`` decides."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"
