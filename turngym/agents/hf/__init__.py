"""The ``hf:PATH`` agent: a transformers causal LM on CPU (or CUDA), requests batched across episodes.

    agent = make_agent("hf:.cache/tiny-models/tiny", temperature=0.7, max_new_tokens=32, constrain=True)

Modules, one idea each:

- ``backend``: ``HFBackend``, the batching loop (requests of concurrent episodes run as one
  left-padded batch with a KV cache, jump-forward over the tokens a constraint forces)
- ``draw``: sampling a batch of rows, each with its own temperature, top-p and seeded generator
- ``prefix_cache``: ``PrefixCache``, the kept KV of earlier turns, keyed by token sequence
- ``kv``: the batch's KV cache (a transformers ``Cache`` of fixed-width buffers) and the layout of
  kept prefixes in it
- ``agent``: ``HFAgent``, the ``hf:`` spec over an ``HFBackend``

Chat templates given by name live in ``turngym.agents.templates`` (all LLM backends use them).
"""

from __future__ import annotations

from turngym.agents.hf.agent import HFAgent
from turngym.agents.hf.backend import HFBackend
from turngym.agents.hf.prefix_cache import PrefixCache
from turngym.agents.templates import resolve_chat_template  # where it lived before; import it from templates

__all__ = ["HFAgent", "HFBackend", "PrefixCache", "resolve_chat_template"]
