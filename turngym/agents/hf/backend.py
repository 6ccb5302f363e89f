"""``HFBackend``: a transformers causal LM behind a batching loop, requests batched across episodes.

Concurrent episodes each ``await backend.generate(...)``; one batching loop collects the requests
waiting, runs them as one left-padded batch with a KV cache (prefill once, then one forward pass
per new token for the whole batch), and answers each request as its row finishes. Requests that
arrive while a batch runs form the next batch. Rows differ freely: each has its own sampling
config, seed (a ``torch.Generator``), stop strings and action-format constraint.

Sampling per row: raw logits -> constraint mask -> temperature -> top-p -> sample (``draw.py``;
argmax at temperature 0); the logprob recorded is the model's (see sampling.py). Jump-forward: where the
constraint allows one token only (the "[" of a bracketed move, its "]" and end-of-turn token), the
token is taken without a forward pass, with logprob 0 (all of the renormalised mass), and fed with
the row's next chunk; a reply "[7]<eos>" costs one forward pass instead of four.

Prefix KV reuse (``prefix_cache=True``, ``prefix_cache.py``): a request whose prompt starts with a
kept earlier turn prefills only the rest on top of its KV; ``kv.py`` lays out the batch's cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turngym.agents.hf.draw import draw, generator
from turngym.agents.hf.prefix_cache import Prefix, PrefixCache
from turngym.agents.llm import Backend, Generation
from turngym.agents.sampling import SamplingConfig, TokenFSM, vocabulary
from turngym.core.errors import ConfigError

__all__ = ["HFBackend", "quiet_hf"]


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
    #: ended at a stop string
    stopped: bool = False
    #: reply tokens whose KV the batch's cache holds (fed to the model)
    fed: int = 0


class HFBackend(Backend):
    """A transformers model behind a batching loop. See the module docstring.

    ``prefix_cache``: reuse the KV of a conversation's earlier turns (``prefix_cache_tokens``: how
    many tokens of KV to keep at most, over all conversations)."""

    name = "hf"

    def __init__(
        self,
        *,
        model: str,
        device: str = "cpu",
        dtype: str = "float32",
        max_batch: int = 64,
        prefix_cache: bool = True,
        prefix_cache_tokens: int = 1 << 16,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from turngym.agents.hf.kv import cache_argument, full_attention

        if not Path(model).is_dir():
            raise ConfigError(
                f"hf model {model!r} is not a directory: pass a local Hugging Face model directory "
                "(build one with `turngym models tiny --out DIR`)"
            )
        self.model_path = model
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        with quiet_hf():
            self.model = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype)).to(self.device).eval()
        gen = self.model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else self.tokenizer.eos_token_id
        self.eos_ids: list[int] = [eos] if isinstance(eos, int) else list(eos or [])
        self.pad_id = gen.pad_token_id if gen.pad_token_id is not None else (self.eos_ids or [0])[0]
        self.max_batch = max_batch
        #: the keyword model.forward takes its KV cache under (``cache``, or ``past_key_values`` before 5.2x)
        self._cache_arg = cache_argument(self.model)
        self._pending: list[_Request] = []
        self._worker: asyncio.Task[None] | None = None
        self._fsms: dict[tuple[str, bool], TokenFSM] = {}
        self._vocab: list[str | None] | None = None
        self._masks: dict[tuple[int, int], Any] = {}
        self._closed = False
        # a sliding window counts cache columns, and the batch layout has holes: such models prefill whole prompts
        self._prefixes = PrefixCache(prefix_cache_tokens) if prefix_cache and full_attention(self.model.config) else None
        #: guards the prefix cache against a weight load between a batch's start and its store
        self._lock = threading.Lock()
        self._weights_version = 0
        #: counters: requests served, batches run, the largest batch; prompt tokens prefilled and
        #: prompt tokens whose KV came from the prefix cache; tokens sampled
        self.stats = {"requests": 0, "batches": 0, "max_batch": 0, "prefilled": 0, "reused": 0, "generated": 0}

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
        fsm = self._fsm(pattern, canonical=sampling.canonical) if pattern else None
        future = asyncio.get_running_loop().create_future()
        req = _Request(prompt=list(prompt), sampling=sampling, fsm=fsm, seed=seed, future=future)
        req.state = fsm.initial if fsm is not None else 0
        self._pending.append(req)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._serve())
        return await future

    def _fsm(self, pattern: str, *, canonical: bool = False) -> TokenFSM:
        fsm = self._fsms.get((pattern, canonical))
        if fsm is None:
            if self._vocab is None:
                self._vocab = vocabulary(self.tokenizer)
            fsm = self._fsms[(pattern, canonical)] = TokenFSM.build(
                pattern, self._vocab, eos_ids=self.eos_ids, canonical=self.tokenizer if canonical else None
            )
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
                    reason = "stop" if r.eos_id is not None or r.stopped else "length"
                    self.stats["generated"] += len(r.ids)
                    r.future.set_result(Generation(ids=r.ids, logprobs=r.logprobs, eos_id=r.eos_id, finish_reason=reason))

    # -- for trainers ----------------------------------------------------------------------------
    async def load_weights(self, weights: Iterable[tuple[str, Any]]) -> None:
        """Copy ``(name, tensor)`` pairs into the served model (names of its ``state_dict``)."""
        import torch

        own = self.model.state_dict()
        named = list(weights)
        unknown = [n for n, _ in named if n not in own]
        if unknown:
            raise KeyError(f"weights {unknown[:5]} are not in the served model {self.model_path!r}: sync a model of the same architecture")
        with self._lock:  # the kept KV was computed with the old weights
            self._weights_version += 1
            if self._prefixes is not None:
                self._prefixes.clear()
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

        from turngym.agents.hf.kv import buffered_cache

        dev = self.device
        with self._lock:
            version = self._weights_version
            hits = [self._prefixes.match(r.prompt) if self._prefixes is not None else None for r in batch]
            for hit in hits:  # a conversation moves forward: the extended entry is not asked for again
                if hit is not None:
                    self._prefixes.discard(hit.tokens)
        cached = [len(h.tokens) if h is not None else 0 for h in hits]
        c_max = max(cached)
        self.stats["prefilled"] += sum(len(r.prompt) - c for r, c in zip(batch, cached, strict=True))
        self.stats["reused"] += sum(cached)
        gens = [generator(r.seed) for r in batch]
        steps = max(r.sampling.max_new_tokens for r in batch)
        # jump-forward: the tokens a constraint allows alone are taken without a forward pass and
        # fed with the next chunk ("[" before a guess, "]" and the end-of-turn token after it)
        for r in batch:
            self._force(r)
        # per row: [pad | cached KV (c) | then each forward pass's chunk, right-aligned after its pad]
        attn = torch.zeros((len(batch), c_max), dtype=torch.long)
        for i, c in enumerate(cached):
            attn[i, c_max - c :] = 1
        nxt_pos = list(cached)  # the position of each row's next fed token
        chunks = [r.prompt[c:] + r.ids for r, c in zip(batch, cached, strict=True)]  # the prefill
        ran = False
        with torch.inference_mode():
            # one buffer per layer, as wide as the batch will grow: no concatenation per forward pass
            width = c_max + max(len(x) for x in chunks) + steps
            layers = self.model.config.get_text_config(decoder=True).num_hidden_layers
            cache = buffered_cache(layers, width, self._past(hits, c_max, width) if c_max else None, c_max)
            while not all(r.done for r in batch):
                w = max(len(x) for x in chunks)
                ids = torch.full((len(batch), w), self.pad_id, dtype=torch.long)
                step_attn = torch.zeros((len(batch), w), dtype=torch.long)
                pos = torch.zeros((len(batch), w), dtype=torch.long)
                for i, x in enumerate(chunks):
                    if x:
                        ids[i, w - len(x) :] = torch.tensor(x)
                        step_attn[i, w - len(x) :] = 1
                        pos[i, w - len(x) :] = torch.arange(nxt_pos[i], nxt_pos[i] + len(x))
                        nxt_pos[i] += len(x)
                        batch[i].fed = len(batch[i].ids)
                attn = torch.cat([attn, step_attn], dim=1)
                out = self.model(
                    input_ids=ids.to(dev), attention_mask=attn.to(dev), position_ids=pos.to(dev),
                    use_cache=True, logits_to_keep=1, **{self._cache_arg: cache},
                )
                ran = True
                self._sample(batch, out.logits[:, -1, :].float(), gens)
                # each unfinished row feeds what it took since its last forward pass
                chunks = [[] if r.done else r.ids[r.fed :] for r in batch]
            if self._prefixes is not None and ran:
                self._keep(batch, cache, attn, version)

    def _past(self, hits: list[Prefix | None], filled: int, width: int) -> list[tuple[Any, Any]]:
        """The kept KV of ``hits`` laid out for the batch (``kv.stack_prefixes``); tests watch this call
        to see which batches mix rows with and without kept KV."""
        from turngym.agents.hf.kv import stack_prefixes

        return stack_prefixes(hits, filled, width)

    def _keep(self, batch: list[_Request], cache: Any, attn: Any, version: int) -> None:
        """Keep each row's KV under its tokens: the prompt and the reply tokens fed to the model (the
        last sampled token and the forced ones after it never were)."""
        mask = attn.to(cache.layers[0].keys.device).bool()
        kept = []
        for i, r in enumerate(batch):
            tokens = tuple(r.prompt + r.ids[: r.fed])
            cols = mask[i].nonzero()[:, 0]
            if len(cols) != len(tokens):  # a row the loop did not lay out as expected: keep nothing of it
                continue
            kv = [(layer.keys[i].index_select(1, cols), layer.values[i].index_select(1, cols)) for layer in cache.layers]
            kept.append((tokens, kv))
        with self._lock:
            if version == self._weights_version and self._prefixes is not None:
                for tokens, kv in kept:
                    self._prefixes.add(tokens, kv)

    def _allowed(self, fsm: TokenFSM, state: int, width: int) -> Any:
        """The boolean ``[width]`` mask of the tokens ``fsm`` allows in ``state`` (cached)."""
        import torch

        key = (id(fsm), state)
        mask = self._masks.get(key)
        if mask is None:
            allowed = torch.from_numpy(fsm.allowed(state))
            mask = torch.zeros(width, dtype=torch.bool)
            mask[allowed[allowed < width]] = True
            mask = self._masks[key] = mask.to(self.device)
        return mask

    def _sample(self, batch: list[_Request], logits: Any, gens: list[Any]) -> None:
        """One token for each unfinished row, then the tokens its constraint forces after it."""
        import torch

        live = [i for i, r in enumerate(batch) if not r.done]
        if not live:
            return
        rows = [batch[i] for i in live]
        logp = torch.log_softmax(logits, dim=-1)
        x = logits
        if len(live) < len(batch):  # rows that finished drop out (no copy while every row is live)
            index = torch.tensor(live, device=logits.device)
            logp, x = logp.index_select(0, index), logits.index_select(0, index)
        constrained = [k for k, r in enumerate(rows) if r.fsm is not None]
        allowed = None
        if constrained:
            allowed = torch.stack([
                self._allowed(r.fsm, r.state, x.shape[-1]) if r.fsm is not None else torch.ones_like(x[0], dtype=torch.bool)
                for r in rows
            ])
            empty = (~allowed.any(-1)).nonzero()
            if len(empty):
                r = rows[int(empty[0, 0])]
                raise RuntimeError(f"no token can continue the constrained reply {r.ids}: the pattern is unsatisfiable")
            x = x.masked_fill(~allowed, float("-inf"))
        toks = draw(x, [r.sampling for r in rows], [gens[i] for i in live])
        lp = logp.gather(-1, toks[:, None].to(logp.device))[:, 0]
        if allowed is not None:
            # the model's distribution; under a constraint renormalised over the allowed tokens, as vLLM reports it
            norm = torch.logsumexp(logp.masked_fill(~allowed, float("-inf")), -1)
            lp = torch.where(torch.tensor([r.fsm is not None for r in rows], device=lp.device), lp - norm, lp)
        for r, tok, value in zip(rows, toks.tolist(), lp.tolist(), strict=True):
            self._emit(r, tok, value)
            self._force(r)

    def _emit(self, r: _Request, tok: int, logprob: float) -> None:
        r.ids.append(tok)
        r.logprobs.append(logprob)
        if r.fsm is not None:
            r.state = r.fsm.advance(r.state, tok)
        if tok in self.eos_ids:
            r.eos_id, r.done = tok, True
        elif _hit_stop(self.tokenizer, r):
            r.done = r.stopped = True
        elif len(r.ids) >= r.sampling.max_new_tokens:
            r.done = True

    def _force(self, r: _Request) -> None:
        """Take the tokens the row's constraint allows alone (logprob 0: the renormalised
        distribution has all its mass there) until a choice is left or the reply ends."""
        while r.fsm is not None and not r.done:
            allowed = r.fsm.allowed(r.state)
            if len(allowed) != 1:
                return
            self._emit(r, int(allowed[0]), 0.0)

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
        with self._lock:
            if self._prefixes is not None:
                self._prefixes.clear()

@contextlib.contextmanager
def quiet_hf() -> Iterator[None]:
    """transformers' own progress bars off ("Loading weights", "Writing model shards": they would cut through
    the run's progress display and fill logs)."""
    from transformers.utils import logging

    was = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            logging.enable_progress_bar()


def _hit_stop(tokenizer: Any, r: _Request) -> bool:
    if not r.sampling.stop:
        return False
    longest = max(len(s) for s in r.sampling.stop)
    tail = tokenizer.decode(r.ids[-(longest + 2) :], skip_special_tokens=False)
    return any(s in tail for s in r.sampling.stop)
