"""``HFAgent``: the ``hf:PATH`` agent spec, an ``LLMAgent`` over an ``HFBackend``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from turngym.agents.hf.backend import HFBackend
from turngym.agents.llm import LLMAgent, split_spec_options

__all__ = ["HFAgent"]


class HFAgent(LLMAgent):
    """``hf:PATH``: an ``LLMAgent`` over an ``HFBackend``."""

    @classmethod
    def from_spec(cls, rest: str = "", **options: Any) -> HFAgent:
        sampling, agent_opts, backend_opts = split_spec_options(
            "hf", rest, options, ("device", "dtype", "max_batch", "prefix_cache", "prefix_cache_tokens")
        )
        for k in ("max_batch", "prefix_cache_tokens"):
            if k in backend_opts:
                backend_opts[k] = int(backend_opts[k])
        if isinstance(backend_opts.get("prefix_cache"), str):  # --set agent.prefix_cache=false
            backend_opts["prefix_cache"] = backend_opts["prefix_cache"].lower() not in ("0", "false", "no", "off")
        backend = HFBackend(model=rest, **backend_opts)
        return cls(backend=backend, sampling=sampling, name=f"hf:{Path(rest).name}", **agent_opts)
