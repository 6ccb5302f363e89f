"""The ``hf:PATH`` agent: a transformers causal LM on CPU (or CUDA), requests batched across episodes.

    agent = make_agent("hf:.cache/tiny-models/tiny", temperature=0.7, max_new_tokens=32, constrain=True)

Concurrent episodes each ``await backend.generate(...)``; one batching loop collects the requests
waiting, runs them as one left-padded batch with a KV cache (prefill once, then one forward pass
per new token for the whole batch), and answers each request as its row finishes. Requests that
arrive while a batch runs form the next batch. Rows differ freely: each has its own sampling
config, seed (a ``torch.Generator``), stop strings and action-format constraint.

Sampling per row: raw logits -> constraint mask -> temperature -> top-p -> sample (argmax at
temperature 0); the logprob recorded is the model's (see sampling.py). Jump-forward: where the
constraint allows one token only (the "[" of a bracketed move, its "]" and end-of-turn token), the
token is taken without a forward pass, with logprob 0 (all of the renormalised mass), and fed with
the row's next chunk; a reply "[7]<eos>" costs one forward pass instead of four. The batch is sampled in a
few tensor ops; the draw is ``torch.multinomial``'s own (``argmax(p / q)``, ``q ~ Exp(1)`` from the
row's generator), so a seeded row samples what ``torch.multinomial(p, 1, generator=g)`` would,
whatever else is in the batch.

Prefix KV reuse (``prefix_cache=True``): a conversation only appends, so turn t+1's prompt starts
with turn t's prompt and reply. After a batch, each row's KV (the prompt and the reply tokens that
were fed: not the last sampled token nor the forced ones after it) is kept, keyed by its token sequence; a later
request whose prompt starts with a kept sequence prefills only the rest on top of it. A batch
mixes cached lengths and new lengths: its KV is laid out per row as [pad | cached KV | pad | new
tokens], with a 2D attention mask that has a hole between the two parts and per-row position ids
(the real positions), then decodes as usual. Kept entries are bounded (least recently used out
past ``prefix_cache_tokens`` tokens), dropped once a request extends them, and all dropped when
new weights are loaded. Models with a sliding window prefill every prompt whole. The batch's KV
lives in one buffer per layer, as wide as the batch will grow, so no forward pass copies the
whole cache to append to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turngym.agents.llm import Backend, Generation, LLMAgent, split_spec_options
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
    #: reply tokens whose KV the batch's cache holds (fed to the model)
    fed: int = 0


@dataclass
class _Prefix:
    """A finished request's token sequence and its KV: one ``(keys, values)`` per layer, ``[heads, len, dim]``."""

    tokens: tuple[int, ...]
    kv: list[tuple[Any, Any]]


class PrefixCache:
    """Kept KV of finished requests, keyed by their token sequence, least recently used out past
    ``max_tokens`` tokens in all. ``match`` finds the longest kept sequence a prompt starts with."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self.tokens = 0
        self._entries: OrderedDict[int, _Prefix] = OrderedDict()
        self._lengths: Counter[int] = Counter()

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, prompt: list[int]) -> _Prefix | None:
        """The longest kept sequence that is a proper prefix of ``prompt`` (at least one new token)."""
        for n in sorted((n for n in self._lengths if n < len(prompt)), reverse=True):
            head = tuple(prompt[:n])
            hit = self._entries.get(hash(head))
            if hit is not None and hit.tokens == head:
                self._entries.move_to_end(hash(head))
                return hit
        return None

    def add(self, tokens: tuple[int, ...], kv: list[tuple[Any, Any]]) -> None:
        if not tokens or len(tokens) > self.max_tokens:
            return
        clash = self._entries.pop(hash(tokens), None)  # the same sequence kept again, or a hash collision
        if clash is not None:
            self._forget(clash)
        self._entries[hash(tokens)] = _Prefix(tokens, kv)
        self._lengths[len(tokens)] += 1
        self.tokens += len(tokens)
        while self.tokens > self.max_tokens:
            _, old = self._entries.popitem(last=False)
            self._forget(old)

    def discard(self, tokens: tuple[int, ...]) -> None:
        old = self._entries.get(hash(tokens))
        if old is not None and old.tokens == tokens:
            del self._entries[hash(tokens)]
            self._forget(old)

    def _forget(self, old: _Prefix) -> None:
        self.tokens -= len(old.tokens)
        self._lengths[len(old.tokens)] -= 1
        if not self._lengths[len(old.tokens)]:
            del self._lengths[len(old.tokens)]

    def clear(self) -> None:
        self._entries.clear()
        self._lengths.clear()
        self.tokens = 0


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
        self._fsms: dict[tuple[str, bool], TokenFSM] = {}
        self._vocab: list[str | None] | None = None
        self._masks: dict[tuple[int, int], Any] = {}
        self._closed = False
        # a sliding window counts cache columns, and the batch layout has holes: such models prefill whole prompts
        self._prefixes = PrefixCache(prefix_cache_tokens) if prefix_cache and _full_attention(self.model.config) else None
        #: guards the prefix cache against a weight load between a batch's start and its store
        self._lock = threading.Lock()
        self._weights_version = 0
        #: counters: requests served, batches run, the largest batch; prompt tokens prefilled and
        #: prompt tokens whose KV came from the prefix cache
        self.stats = {"requests": 0, "batches": 0, "max_batch": 0, "prefilled": 0, "reused": 0}

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
        gens = [_generator(r.seed) for r in batch]
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
            cache = _buffered_cache(self._past(hits, c_max, width) if c_max else None, c_max, width)
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
                    past_key_values=cache, use_cache=True, logits_to_keep=1,
                )
                ran = True
                self._sample(batch, out.logits[:, -1, :].float(), gens)
                # each unfinished row feeds what it took since its last forward pass
                chunks = [[] if r.done else r.ids[r.fed :] for r in batch]
            if self._prefixes is not None and ran:
                self._keep(batch, cache, attn, version)

    def _past(self, hits: list[_Prefix | None], filled: int, width: int) -> list[tuple[Any, Any]]:
        """Per layer, ``width``-column KV buffers holding each row's kept KV right-aligned in the
        first ``filled`` columns (zeros where masked)."""
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
        index = torch.tensor(live, device=logits.device)
        logp = torch.log_softmax(logits, dim=-1).index_select(0, index)
        x = logits.index_select(0, index)
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
        toks = _draw(x, [r.sampling for r in rows], [gens[i] for i in live])
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
        elif len(r.ids) >= r.sampling.max_new_tokens or _hit_stop(self.tokenizer, r):
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


def _generator(seed: int | None) -> Any:
    if seed is None:
        return None
    import torch

    return torch.Generator().manual_seed(int(seed))


def _draw(x: Any, samplings: list[SamplingConfig], gens: list[Any]) -> Any:
    """One token per row of ``x`` (masked logits): temperature, then top-p (nucleus), then one draw;
    argmax at temperature 0. The draw is ``torch.multinomial(p, 1, generator=g)``'s for one sample,
    ``argmax(p / q)`` with ``q ~ Exp(1)`` filled from the row's generator, so seeded rows repeat
    whatever the batch holds."""
    import torch

    temps = [s.temperature for s in samplings]
    toks = x.argmax(-1).cpu()
    hot = [k for k, t in enumerate(temps) if t != 0]
    if not hot:
        return toks
    sub = torch.tensor(hot, device=x.device)
    temp = torch.tensor([temps[k] for k in hot], dtype=x.dtype, device=x.device)
    probs = torch.softmax(x.index_select(0, sub) / temp[:, None], dim=-1)
    top_p = torch.tensor([samplings[k].top_p for k in hot], dtype=probs.dtype, device=probs.device)
    nucleus = (top_p < 1.0).nonzero()[:, 0]
    if len(nucleus):
        part = probs.index_select(0, nucleus)
        sorted_p, order = part.sort(dim=-1, descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < top_p[nucleus, None]  # always keeps the top token
        part = torch.zeros_like(part).scatter(1, order, torch.where(keep, sorted_p, torch.zeros_like(sorted_p)))
        probs = probs.index_copy(0, nucleus, part)
    probs = probs.cpu()
    q = torch.empty_like(probs)
    for k in range(len(hot)):
        q[k].exponential_(1, generator=gens[hot[k]])
    toks[hot] = (probs / q).argmax(-1)
    return toks


def _buffered_cache(past: list[tuple[Any, Any]] | None, filled: int, width: int) -> Any:
    """A ``DynamicCache`` whose layers write into ``width``-column buffers instead of concatenating
    the whole cache each forward pass; ``past``: the buffers, per layer, first ``filled`` columns set."""
    import torch
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    class BufferedLayer(DynamicLayer):
        def __init__(self, keys: Any = None, values: Any = None) -> None:
            super().__init__()
            self._k, self._v, self._n = keys, values, 0
            if keys is not None:
                self.lazy_initialization(keys, values)
                self._n = filled
                self.keys, self.values = keys[:, :, :filled], values[:, :, :filled]

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                b, h, _, d = key_states.shape
                self._k = key_states.new_zeros((b, h, width, d))
                self._v = value_states.new_zeros((b, h, width, value_states.shape[-1]))
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

    cache = DynamicCache()
    if past is None:
        cache.layers, cache.layer_class_to_replicate = [], BufferedLayer
    else:
        cache.layers, cache.layer_class_to_replicate = [BufferedLayer(k, v) for k, v in past], None
    return cache


def _full_attention(config: Any) -> bool:
    """True if every layer attends to all earlier tokens (no sliding window, no other layer kind)."""
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    if any(t != "full_attention" for t in getattr(text, "layer_types", None) or ()):
        return False
    return getattr(text, "sliding_window", None) is None or getattr(text, "use_sliding_window", True) is False


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
        sampling, agent_opts, backend_opts = split_spec_options(
            "hf", rest, options, ("device", "dtype", "max_batch", "prefix_cache", "prefix_cache_tokens")
        )
        for k in ("max_batch", "prefix_cache_tokens"):
            if k in backend_opts:
                backend_opts[k] = int(backend_opts[k])
        if isinstance(backend_opts.get("prefix_cache"), str):  # --set agent.prefix_cache=false
            backend_opts["prefix_cache"] = backend_opts["prefix_cache"].lower() not in ("0", "false", "no", "off")
        backend = HFBackend(model=rest, **backend_opts)
        return cls(
            backend=backend,
            sampling=sampling,
            system_prompt=agent_opts.get("system_prompt"),
            chat_template=resolve_chat_template(agent_opts.get("chat_template")),
            name=f"hf:{Path(rest).name}",
        )
