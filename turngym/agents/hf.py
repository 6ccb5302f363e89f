"""The ``hf:PATH`` agent: a transformers causal LM on CPU (or CUDA), requests batched across episodes.

    agent = make_agent("hf:.cache/tiny-models/tiny", temperature=0.7, max_new_tokens=32, constrain=True)

Concurrent episodes each ``await backend.generate(...)``; one batching loop collects the requests
waiting, runs them as one left-padded batch with a KV cache (prefill once, then one forward pass
per new token for the whole batch), and answers each request as its row finishes. Requests that
arrive while a batch runs form the next batch. Rows differ freely: each has its own sampling
config, seed (a ``torch.Generator``), stop strings and action-format constraint.

Sampling per row: raw logits -> constraint mask -> temperature -> top-p -> sample (argmax at
temperature 0); the logprob recorded is the model's (see sampling.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turngym.agents.llm import Backend, Generation, LLMAgent
from turngym.agents.sampling import SamplingConfig, TokenFSM, vocabulary
from turngym.core.errors import ConfigError

__all__ = ["HFAgent", "HFBackend", "resolve_chat_template"]


def resolve_chat_template(value: str | None) -> str | None:
    """A template name from ``turngym.agents.tiny.TEMPLATES``, a file path, or Jinja text."""
    if not value:
        return None
    from turngym.agents.tiny import TEMPLATES

    if value in TEMPLATES:
        return TEMPLATES[value]
    path = Path(value)
    if "{" not in value and path.is_file():
        return path.read_text()
    if "{" not in value:
        raise ConfigError(
            f"chat_template {value!r} is neither a template name ({', '.join(TEMPLATES)}), a file, nor Jinja text"
        )
    return value


@dataclass
class _Request:
    prompt: list[int]
    sampling: SamplingConfig
    fsm: TokenFSM | None
    seed: int | None
    future: asyncio.Future[Generation]
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    eos_id: int | None = None
    state: int = 0
    done: bool = False


class HFBackend(Backend):
    """A transformers model behind a batching loop. See the module docstring."""

    name = "hf"

    def __init__(self, *, model: str, device: str = "cpu", dtype: str = "float32", max_batch: int = 64) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not Path(model).is_dir():
            raise ConfigError(
                f"hf model {model!r} is not a directory: pass a local Hugging Face model directory "
                "(build one with `turngym models tiny --out DIR`)"
            )
        self.model_path = model
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype)).to(self.device).eval()
        gen = self.model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else self.tokenizer.eos_token_id
        self.eos_ids: list[int] = [eos] if isinstance(eos, int) else list(eos or [])
        self.pad_id = gen.pad_token_id if gen.pad_token_id is not None else (self.eos_ids or [0])[0]
        self.max_batch = max_batch
        self._pending: list[_Request] = []
        self._worker: asyncio.Task[None] | None = None
        self._fsms: dict[str, TokenFSM] = {}
        self._vocab: list[str | None] | None = None
        self._closed = False
        #: counters: requests served, batches run, the largest batch
        self.stats = {"requests": 0, "batches": 0, "max_batch": 0}

    # -- the async front ------------------------------------------------------------------------
    async def generate(
        self, prompt: list[int], sampling: SamplingConfig, *, pattern: str | None = None, seed: int | None = None
    ) -> Generation:
        if self._closed:
            raise RuntimeError("the hf backend is closed: make a new agent")
        limit = self.model.config.max_position_embeddings
        if len(prompt) + sampling.max_new_tokens > limit:
            raise ValueError(
                f"the prompt has {len(prompt)} tokens and max_new_tokens={sampling.max_new_tokens}, "
                f"over the model's {limit} positions: shorten the episode (max_turns) or max_new_tokens"
            )
        fsm = self._fsm(pattern) if pattern else None
        future = asyncio.get_running_loop().create_future()
        req = _Request(prompt=list(prompt), sampling=sampling, fsm=fsm, seed=seed, future=future)
        req.state = fsm.initial if fsm is not None else 0
        self._pending.append(req)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._serve())
        return await future

    def _fsm(self, pattern: str) -> TokenFSM:
        fsm = self._fsms.get(pattern)
        if fsm is None:
            if self._vocab is None:
                self._vocab = vocabulary(self.tokenizer)
            fsm = self._fsms[pattern] = TokenFSM.build(pattern, self._vocab, eos_ids=self.eos_ids)
        return fsm

    async def _serve(self) -> None:
        while self._pending:
            # let the episodes that are about to ask join this batch: yield while the queue grows
            waiting = -1
            while waiting != len(self._pending) < self.max_batch:
                waiting = len(self._pending)
                await asyncio.sleep(0)
            batch = [r for r in self._pending[: self.max_batch] if not r.future.done()]
            del self._pending[: self.max_batch]
            if not batch:
                continue
            self.stats["requests"] += len(batch)
            self.stats["batches"] += 1
            self.stats["max_batch"] = max(self.stats["max_batch"], len(batch))
            try:
                await asyncio.to_thread(self._run_batch, batch)
            except Exception as e:  # noqa: BLE001 - every request of the failed batch gets the error
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(e)
                continue
            for r in batch:
                if not r.future.done():
                    r.future.set_result(Generation(ids=r.ids, logprobs=r.logprobs, eos_id=r.eos_id))

    # -- for trainers ----------------------------------------------------------------------------
    async def load_weights(self, weights: Iterable[tuple[str, Any]]) -> None:
        """Copy ``(name, tensor)`` pairs into the served model (names of its ``state_dict``)."""
        import torch

        own = self.model.state_dict()
        named = list(weights)
        unknown = [n for n, _ in named if n not in own]
        if unknown:
            raise KeyError(f"weights {unknown[:5]} are not in the served model {self.model_path!r}: sync a model of the same architecture")
        with torch.no_grad():
            for name, tensor in named:
                own[name].copy_(tensor.to(device=own[name].device, dtype=own[name].dtype))

    async def prompt_logprobs(self, ids: list[int]) -> list[float]:
        import torch

        with torch.inference_mode():
            logits = self.model(input_ids=torch.tensor([ids], device=self.device)).logits[0, :-1].float()
            logp = torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids[1:], device=self.device)[:, None])
        return [float(x) for x in logp[:, 0].cpu()]

    # -- the batch, in a worker thread ----------------------------------------------------------
    def _run_batch(self, batch: list[_Request]) -> None:
        import torch

        dev = self.device
        width = max(len(r.prompt) for r in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):
            ids[i, width - len(r.prompt) :] = torch.tensor(r.prompt)
            attn[i, width - len(r.prompt) :] = 1
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        gens = [_generator(r.seed) for r in batch]
        steps = max(r.sampling.max_new_tokens for r in batch)
        with torch.inference_mode():
            from transformers import DynamicCache

            cache = DynamicCache()
            out = self.model(
                input_ids=ids.to(dev), attention_mask=attn.to(dev), position_ids=pos.to(dev),
                past_key_values=cache, use_cache=True, logits_to_keep=1,
            )
            for _ in range(steps):
                logits = out.logits[:, -1, :].float()
                nxt = self._sample(batch, logits, gens)
                if all(r.done for r in batch):
                    break
                live = torch.tensor([0 if r.done else 1 for r in batch], dtype=torch.long)
                attn = torch.cat([attn, live[:, None]], dim=1)
                pos = pos[:, -1:] + 1
                out = self.model(
                    input_ids=nxt[:, None].to(dev), attention_mask=attn.to(dev), position_ids=pos.to(dev),
                    past_key_values=cache, use_cache=True,
                )

    def _sample(self, batch: list[_Request], logits: Any, gens: list[Any]) -> Any:
        """One token for each unfinished row; finished rows get the pad id."""
        import torch

        logp = torch.log_softmax(logits, dim=-1)
        nxt = torch.full((len(batch),), self.pad_id, dtype=torch.long)
        for i, r in enumerate(batch):
            if r.done:
                continue
            row = logits[i]
            if r.fsm is not None:
                allowed = torch.from_numpy(r.fsm.allowed(r.state)).to(row.device)
                if allowed.numel() == 0:
                    raise RuntimeError(f"no token can continue the constrained reply {r.ids}: the pattern is unsatisfiable")
                masked = torch.full_like(row, float("-inf"))
                masked[allowed] = row[allowed]
                row = masked
            tok = _draw(row, r.sampling, gens[i])
            nxt[i] = tok
            r.ids.append(tok)
            # the model's distribution; under a constraint renormalised over the allowed tokens, as vLLM reports it
            lp = logp[i, tok] - torch.logsumexp(logp[i, allowed], 0) if r.fsm is not None else logp[i, tok]
            r.logprobs.append(float(lp))
            if r.fsm is not None:
                r.state = r.fsm.advance(r.state, tok)
            if tok in self.eos_ids:
                r.eos_id, r.done = tok, True
            elif len(r.ids) >= r.sampling.max_new_tokens or _hit_stop(self.tokenizer, r):
                r.done = True
        return nxt

    async def aclose(self) -> None:
        self._closed = True
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await worker
        for r in self._pending:
            if not r.future.done():
                r.future.cancel()
        self._pending.clear()


def _generator(seed: int | None) -> Any:
    if seed is None:
        return None
    import torch

    return torch.Generator().manual_seed(int(seed))


def _draw(row: Any, sampling: SamplingConfig, gen: Any) -> int:
    """Temperature, then top-p (nucleus), then one draw; argmax at temperature 0."""
    import torch

    if sampling.temperature == 0:
        return int(row.argmax())
    probs = torch.softmax(row / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < sampling.top_p  # always keeps the top token
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
    return int(torch.multinomial(probs.cpu(), 1, generator=gen))


def _hit_stop(tokenizer: Any, r: _Request) -> bool:
    if not r.sampling.stop:
        return False
    longest = max(len(s) for s in r.sampling.stop)
    tail = tokenizer.decode(r.ids[-(longest + 2) :], skip_special_tokens=False)
    return any(s in tail for s in r.sampling.stop)


class HFAgent(LLMAgent):
    """``hf:PATH``: an ``LLMAgent`` over an ``HFBackend``."""

    @classmethod
    def from_spec(cls, rest: str = "", **options: Any) -> HFAgent:
        if not rest:
            raise ConfigError("the hf agent needs a model directory: --agent hf:PATH")
        sampling, options = SamplingConfig.split_options(options)
        agent_opts = {k: options.pop(k) for k in ("system_prompt", "chat_template") if k in options}
        backend_opts = {k: options.pop(k) for k in ("device", "dtype", "max_batch") if k in options}
        if options:
            raise ConfigError(
                f"unknown hf agent options {sorted(options)}: use sampling fields "
                f"({', '.join(SamplingConfig.model_fields)}), system_prompt, chat_template, device, dtype, max_batch"
            )
        if "max_batch" in backend_opts:
            backend_opts["max_batch"] = int(backend_opts["max_batch"])
        backend = HFBackend(model=rest, **backend_opts)
        return cls(
            backend=backend,
            sampling=sampling,
            system_prompt=agent_opts.get("system_prompt"),
            chat_template=resolve_chat_template(agent_opts.get("chat_template")),
            name=f"hf:{Path(rest).name}",
        )
