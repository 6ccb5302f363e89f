"""The hf backend with a real tiny model: stream equality, logprob parity, batching, constrained
sampling, seeds, and failures that end one episode only."""

from __future__ import annotations

import asyncio

import pytest
import regex

from turngym.agents.base import make_agent
from turngym.agents.llm import Backend
from turngym.agents.runner import group_tasks, run_episodes

#: |recomputed - sampled| logprob tolerance, float32 on CPU: batched left-padded decoding with a
#: KV cache against one unpadded forward pass differ by rounding only (~1e-6 seen)
LOGPROB_TOL = 1e-4
GN = "turngym/GuessNumber-v0"
LONG = {"max_invalid_actions": 50}  # ten turns whatever the replies are
GN_PATTERN = r"\[(-?\d+)\]"  # BracketedMove(move_pattern=r"-?\d+").pattern()


class Recording(Backend):
    """Wraps a backend, records (prompt, generation) per call, and can fail chosen calls."""

    def __init__(self, inner: Backend, *, fail_on=(), hang_on=()) -> None:
        self.inner = inner
        self.tokenizer = inner.tokenizer
        self.name = inner.name
        self.calls = []
        self.fail_on, self.hang_on = set(fail_on), set(hang_on)
        self.n = 0

    async def generate(self, prompt, sampling, *, pattern=None, seed=None):
        k, self.n = self.n, self.n + 1
        if k in self.fail_on:
            raise RuntimeError(f"backend failure injected at call {k}")
        if k in self.hang_on:
            await asyncio.sleep(3600)
        gen = await self.inner.generate(prompt, sampling, pattern=pattern, seed=seed)
        self.calls.append((list(prompt), gen))
        return gen

    async def aclose(self):
        await self.inner.aclose()


def check_stream(calls, episodes):
    """Each turn's prompt is the stream before its action span; the span holds the returned ids."""
    by_prompt: dict[tuple[int, ...], list] = {}
    for p, g in calls:
        by_prompt.setdefault(tuple(p), []).append(g)
    seen = 0
    for ep in episodes:
        assert len(ep.tokens) == len(ep.mask) == len(ep.logprobs)
        for turn in ep.turns:
            s, e = turn.action_span
            gens = by_prompt[tuple(ep.tokens[:s])]  # the backend was given exactly the stream so far
            gen = next(g for g in gens if g.ids == ep.tokens[s:e])  # and returned exactly the span
            gens.remove(gen)
            assert ep.logprobs[s:e] == gen.logprobs
            assert ep.mask[s:e] == [1] * (e - s)
            seen += 1
        assert sum(ep.mask) == sum(e - s for s, e in (t.action_span for t in ep.turns))
    assert seen == len(calls)


def recompute_logprobs(model_dir, episode, fsm=None):
    """Logprob of every token of the stream under one HF forward pass (position i: token i given < i);
    with ``fsm``, action tokens renormalised over the tokens it allows at their position."""
    import torch
    from transformers import AutoModelForCausalLM

    model = recompute_logprobs.__dict__.get(model_dir)
    if model is None:
        model = recompute_logprobs.__dict__[model_dir] = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = torch.tensor([episode.tokens])
    with torch.inference_mode():
        logp = torch.log_softmax(model(ids).logits[0].float(), -1)
    out = [0.0] + logp[:-1].gather(-1, ids[0, 1:, None])[:, 0].tolist()
    if fsm is not None:
        for turn in episode.turns:
            state = fsm.initial
            for i in range(*turn.action_span):
                allowed = torch.from_numpy(fsm.allowed(state))
                out[i] -= float(torch.logsumexp(logp[i - 1, allowed], 0))
                state = fsm.advance(state, episode.tokens[i])
    return out


def check_logprobs(model_dir, episodes, tol, *, pattern=None, eos_ids=(), canonical=False):
    """Sampled logprobs against one HF forward pass over each stream; with ``pattern`` (constrained
    sampling) against the forward pass renormalised over the tokens the pattern allows there."""
    worst = 0.0
    fsm = None
    if pattern is not None:
        from transformers import AutoTokenizer

        from turngym.agents.sampling import TokenFSM, vocabulary

        tok = AutoTokenizer.from_pretrained(model_dir)
        fsm = TokenFSM.build(pattern, vocabulary(tok), eos_ids=eos_ids, canonical=tok if canonical else None)
    for ep in episodes:
        ref = recompute_logprobs(str(model_dir), ep, fsm)
        for i, m in enumerate(ep.mask):
            if m:
                worst = max(worst, abs(ref[i] - ep.logprobs[i]))
    assert worst <= tol, f"logprob mismatch {worst} > {tol}"
    return worst


def _agent(tiny_dir, **options):
    agent = make_agent(f"hf:{tiny_dir}", **options)
    agent.backend = Recording(agent.backend)
    return agent


@pytest.fixture(scope="module")
def hf_run(tiny_dir):
    agent = _agent(tiny_dir, max_new_tokens=6, seed=7, temperature=1.0)
    tasks = group_tasks(GN, seeds=range(4), group_size=2, env_kwargs=LONG, max_turns=10)
    eps = asyncio.run(run_episodes(tasks, agent, concurrency=8))
    calls = agent.backend.calls
    stats = dict(agent.backend.inner.stats)
    asyncio.run(agent.aclose())
    return eps, calls, stats


def test_stream_equality_over_ten_turns(hf_run):
    eps, calls, _ = hf_run
    assert all(ep.error is None and len(ep.turns) == 10 for ep in eps)
    assert all(ep.trainable for ep in eps)
    check_stream(calls, eps)


def test_logprob_parity_with_a_forward_pass(hf_run, tiny_dir):
    eps, _, _ = hf_run
    check_logprobs(tiny_dir, eps, LOGPROB_TOL)


def test_concurrent_episodes_are_batched(hf_run):
    _, calls, stats = hf_run
    assert stats["requests"] == len(calls) == 80
    assert stats["max_batch"] > 1 and stats["batches"] < stats["requests"]


def test_same_seed_same_streams(tiny_dir, hf_run):
    eps, _, _ = hf_run
    agent = make_agent(f"hf:{tiny_dir}", max_new_tokens=6, seed=7, temperature=1.0)
    tasks = group_tasks(GN, seeds=range(4), group_size=2, env_kwargs=LONG, max_turns=10)
    again = asyncio.run(run_episodes(tasks, agent, concurrency=8))
    asyncio.run(agent.aclose())
    assert [e.tokens for e in again] == [e.tokens for e in eps]
    assert eps[0].tokens != eps[1].tokens  # two episodes of one group sample differently


def test_constrained_sampling_matches_the_action_format(tiny_dir):
    agent = _agent(tiny_dir, max_new_tokens=8, seed=3, constrain=True)
    tasks = group_tasks(GN, seeds=range(3), env_kwargs=LONG, max_turns=4)
    eps = asyncio.run(run_episodes(tasks, agent, concurrency=3))
    calls = agent.backend.calls
    asyncio.run(agent.aclose())
    check_stream(calls, eps)
    # the model's logprobs renormalised over the allowed tokens (what vLLM reports too)
    check_logprobs(tiny_dir, eps, LOGPROB_TOL, pattern=GN_PATTERN, eos_ids=agent.backend.inner.eos_ids)
    pattern = regex.compile(GN_PATTERN)
    finished = 0
    for ep in eps:
        for t in ep.turns:
            assert pattern.fullmatch(t.action, partial=True), t.action  # never leaves the format
            if ep.tokens[t.action_span[1] - 1] == agent.backend.inner.eos_ids[0]:
                assert pattern.fullmatch(t.action)
                finished += 1
    # the random model writes no bracket unconstrained; constrained, complete guesses appear
    assert finished > 0


def test_constraint_never_allows_a_token_that_no_token_can_continue():
    """A word-level vocabulary may hold a prefix of an action's word ("a" of "answer") but nothing that spells
    the rest: that token keeps a match reachable in characters, not in tokens, so it is never allowed."""
    from turngym.agents.sampling import TokenFSM

    vocab = ["[", "]", "a", "answer", "search", " ", "Oslo", "Ann", "<eos>"]
    fsm = TokenFSM.build(r"\[(answer Oslo|search Ann)\]", [*vocab[:-1], None], eos_ids=[8])
    state = fsm.advance(fsm.initial, 0)  # "["
    assert [vocab[i] for i in fsm.allowed(state)] == ["answer", "search"]
    for word in (3, 5, 6, 1):  # "answer", " ", "Oslo", "]"
        state = fsm.advance(state, word)
    assert fsm.allowed(state).tolist() == [8]  # a full match: only EOS


def test_backend_error_and_timeout_end_one_episode_each(tiny_dir):
    agent = make_agent(f"hf:{tiny_dir}", max_new_tokens=4, seed=1)
    agent.backend = Recording(agent.backend, fail_on={0}, hang_on={1})
    tasks = group_tasks(GN, seeds=range(4), env_kwargs=LONG, max_turns=3)
    eps = asyncio.run(run_episodes(tasks, agent, concurrency=4, turn_timeout=8))
    calls = agent.backend.calls
    asyncio.run(agent.aclose())
    errors = sorted(ep.error.split(":")[0] for ep in eps if ep.error)
    assert errors == ["RuntimeError", "TimeoutError"]
    ok = [ep for ep in eps if ep.error is None]
    assert len(ok) == 2 and all(len(ep.turns) == 3 for ep in ok)
    check_stream(calls, ok)


def test_cli_models_tiny_and_eval_with_the_hf_agent(tmp_path, tiny_dir):
    """`turngym models tiny` writes a loadable model (task tokenizer, tied); `turngym eval --agent hf:DIR`
    runs a suite with it and stores token streams."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("turngym")
    model = tmp_path / "gn"
    out = subprocess.run(
        [str(exe), "models", "tiny", "--out", str(model), "--size", "nano", "--tokenizer", "task:guess_number", "--tied"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    info = json.loads((model / "turngym_tiny.json").read_text())
    assert info["tied"] and info["tokenizer"] == "task:guess_number"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    m = AutoModelForCausalLM.from_pretrained(model)
    assert m.get_input_embeddings().weight.data_ptr() == m.get_output_embeddings().weight.data_ptr()
    tok = AutoTokenizer.from_pretrained(model)
    assert len(tok) < 256 and tok.decode(tok.encode("The secret is higher than 50.")) == "The secret is higher than 50."

    run = tmp_path / "run"
    suite = tmp_path / "gn.yaml"
    suite.write_text("name: gn\nepisodes: 2\nenvs:\n  - id: turngym/GuessNumber-v0\n    max_turns: 3\n")
    out = subprocess.run(
        [str(exe), "eval", "--suite", str(suite), "--agent", f"hf:{tiny_dir}", "--episodes", "1", "--out", str(run),
         "--set", "agent.max_new_tokens=4", "--set", "agent.seed=0", "--set", "agent.temperature=0.8"],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    episodes = [json.loads(line) for f in run.rglob("*.jsonl") for line in f.read_text().splitlines() if line.strip()]
    played = [e for e in episodes if e.get("turns")]
    assert played and all(e["tokens"] and e["trainable"] for e in played)


# -- prefix KV reuse across turns ---------------------------------------------------------------


def _play(tiny_dir, tasks, concurrency, **options):
    agent = make_agent(f"hf:{tiny_dir}", **options)
    backend = agent.backend
    mixed = []
    past = backend._past

    def spy(hits, *args):  # which batches mix rows with and without kept KV
        mixed.append(any(h is None for h in hits) and any(h is not None for h in hits))
        return past(hits, *args)

    backend._past = spy
    eps = asyncio.run(run_episodes(tasks, agent, concurrency=concurrency))
    stats = dict(backend.stats)
    asyncio.run(agent.aclose())
    assert all(ep.error is None for ep in eps), [ep.error for ep in eps if ep.error]
    return eps, stats, mixed


def _same_streams(cached, fresh):
    assert [e.tokens for e in cached] == [e.tokens for e in fresh]
    worst = max(abs(a - b) for c, f in zip(cached, fresh, strict=True) for a, b in zip(c.logprobs, f.logprobs, strict=True))
    assert worst <= LOGPROB_TOL, f"cached vs fresh prefill logprobs differ by {worst}"


def test_prefix_cache_samples_what_a_full_prefill_samples(tiny_dir, hf_run):
    """The fixture's run (prefix cache on) against the same seeds with every prompt prefilled whole."""
    eps, _, stats = hf_run
    assert stats["reused"] > stats["prefilled"]  # ten turns: most of each prompt came from the cache
    fresh, off, _ = _play(
        tiny_dir, group_tasks(GN, seeds=range(4), group_size=2, env_kwargs=LONG, max_turns=10), 8,
        max_new_tokens=6, seed=7, temperature=1.0, prefix_cache=False,
    )
    assert off["reused"] == 0
    _same_streams(eps, fresh)


def test_prefix_cache_with_mixed_batches_and_constraint(tiny_dir):
    """Episodes of 2 and 4 turns, 4 at a time: new episodes (nothing kept) join batches of
    continuing ones (KV kept), so rows with and without kept KV share a batch."""
    tasks = group_tasks(GN, seeds=range(3), env_kwargs=LONG, max_turns=2, prefix="short")
    tasks += group_tasks(GN, seeds=range(3), env_kwargs=LONG, max_turns=4, prefix="long")
    tasks = [tasks[0], tasks[3], tasks[1], tasks[4], tasks[2], tasks[5]]
    opts = {"max_new_tokens": 6, "seed": 5, "constrain": True}
    cached, on, mixed = _play(tiny_dir, tasks, 4, **opts)
    fresh, _, _ = _play(tiny_dir, tasks, 4, prefix_cache=False, **opts)
    assert on["reused"] > 0 and any(mixed)
    _same_streams(cached, fresh)
    from transformers import GenerationConfig

    eos_id = GenerationConfig.from_pretrained(tiny_dir).eos_token_id
    check_logprobs(tiny_dir, cached, LOGPROB_TOL, pattern=GN_PATTERN, eos_ids=[eos_id] if isinstance(eos_id, int) else eos_id)


def test_prefix_cache_bounds_and_drops_entries():
    from turngym.agents.hf import PrefixCache

    cache = PrefixCache(max_tokens=10)
    cache.add((1, 2, 3), ["a"])
    cache.add((7, 8, 9, 10), ["b"])
    assert cache.match([1, 2, 3]) is None  # the same sequence leaves nothing to prefill: no match
    assert cache.match([1, 2, 3, 4]).kv == ["a"]  # now the most recently used
    cache.add((5, 6, 7, 8, 9), ["c"])  # 12 tokens > 10: the least recently used goes
    assert cache.match([7, 8, 9, 10, 11]) is None and cache.match([1, 2, 3, 4]) is not None
    assert cache.tokens == 8 and len(cache) == 2
    cache.discard((1, 2, 3))
    assert cache.match([1, 2, 3, 4]) is None and cache.tokens == 5


def test_load_weights_drops_kept_kv(tiny_dir):
    agent = make_agent(f"hf:{tiny_dir}", max_new_tokens=3, seed=0)
    backend = agent.backend
    eps = asyncio.run(run_episodes(group_tasks(GN, seeds=[0], env_kwargs=LONG, max_turns=2), agent))
    assert eps[0].error is None and len(backend._prefixes) == 1  # the last turn's KV is kept
    asyncio.run(backend.load_weights(list(backend.model.state_dict().items())[:1]))
    assert len(backend._prefixes) == 0
    asyncio.run(agent.aclose())


def test_jump_forward_takes_forced_tokens_without_a_forward_pass():
    """GuessNumber 1..16 with a task vocabulary: a reply is "[", one of 16 number tokens, "]" and
    the end-of-turn token. Only the number is a choice, so each turn costs one forward pass; the
    three forced tokens carry logprob 0 (all of the renormalised mass) and the streams' logprobs
    still match one unpadded forward pass."""
    from tests.agents.conftest import tiny_model

    path = tiny_model("gn-nano-compact", size="nano", tokenizer="task:guess_number", template="compact")
    agent = make_agent(f"hf:{path}", max_new_tokens=6, seed=2, constrain=True, canonical=True, system_prompt="")
    calls = []
    agent.backend.model.register_forward_hook(lambda *a: calls.append(1))
    tasks = group_tasks(GN, seeds=range(4), group_size=2, env_kwargs={"low": 1, "high": 16}, max_turns=6)
    eps = asyncio.run(run_episodes(tasks, agent, concurrency=8))
    replies = [(e, t) for e in eps for t in e.turns]
    batches = agent.backend.stats["batches"]
    asyncio.run(agent.aclose())
    assert len(calls) == batches  # one forward pass per batch of replies, none for the forced tokens
    for e, t in replies:
        s, end = t.action_span
        assert end - s == 4 and regex.fullmatch(r"\[\d+\]", t.action)
        assert e.logprobs[s] == e.logprobs[s + 2] == e.logprobs[s + 3] == 0.0 and e.logprobs[s + 1] < 0
    check_logprobs(path, eps, LOGPROB_TOL, pattern=r"\[(" + "|".join(map(str, range(1, 17))) + r")\]",
                   eos_ids=agent.backend.eos_ids, canonical=True)


@pytest.mark.filterwarnings("error::FutureWarning", "error::DeprecationWarning")
def test_no_deprecated_transformers_api(tiny_dir):
    """The backend passes its KV cache as the model's forward takes it today (``cache``, where
    transformers deprecated ``past_key_values``): a deprecation warning is an error here, through a
    prefill, decoding steps and a second turn prefilled on top of kept KV."""
    from turngym.agents.hf import HFBackend
    from turngym.agents.sampling import SamplingConfig

    async def two_turns():
        backend = HFBackend(model=str(tiny_dir))
        sampling = SamplingConfig(temperature=1.0, max_new_tokens=4)
        prompt = backend.tokenizer.encode("hello there")
        first = await backend.generate(prompt, sampling, seed=0)
        second = await backend.generate(prompt + first.ids + backend.tokenizer.encode(" again"), sampling, seed=1)
        stats = dict(backend.stats)
        await backend.aclose()
        return first, second, stats

    first, second, stats = asyncio.run(two_turns())
    assert first.ids and second.ids
    assert stats["reused"] > 0  # the second prompt was prefilled on top of the first turn's kept KV


def test_cache_argument_follows_the_forward_signature():
    """``cache`` where the model's forward takes it, ``past_key_values`` before transformers renamed
    it (.venv-vllm's transformers), and a PEFT wrapper's base model decides."""
    from turngym.agents.hf.kv import cache_argument

    class New:
        def forward(self, input_ids=None, cache=None, **kwargs): ...

    class Old:
        def forward(self, input_ids=None, past_key_values=None, **kwargs): ...

    class Wrapper:
        def __init__(self, base):
            self.base = base

        def get_base_model(self):
            return self.base

        def forward(self, *args, **kwargs): ...

    assert [cache_argument(m) for m in (New(), Old(), Wrapper(New()), Wrapper(Old()))] == [
        "cache", "past_key_values", "cache", "past_key_values"
    ]


def test_draw_is_each_rows_own_multinomial_whatever_the_batch_holds():
    """A batch of greedy, hot, cooled and nucleus rows: each seeded row draws what ``torch.multinomial``
    draws from its own distribution with its own generator, each greedy row its argmax."""
    import torch

    from turngym.agents.hf.draw import draw, generator
    from turngym.agents.sampling import SamplingConfig

    x = torch.randn(5, 50, generator=torch.Generator().manual_seed(0)) * 3
    configs = [
        SamplingConfig(temperature=1.0), SamplingConfig(temperature=0.0), SamplingConfig(temperature=0.5),
        SamplingConfig(temperature=1.0, top_p=0.6), SamplingConfig(temperature=1.0),
    ]
    for rounds in range(3):
        seeds = [10 * rounds + k for k in range(5)]
        toks = draw(x, configs, [generator(s) for s in seeds])
        for k, (c, seed) in enumerate(zip(configs, seeds, strict=True)):
            if c.temperature == 0:
                assert int(toks[k]) == int(x[k].argmax())
                continue
            p = torch.softmax(x[k] / c.temperature, -1)
            if c.top_p < 1:
                sorted_p, order = p.sort(descending=True)
                keep = sorted_p.cumsum(-1) - sorted_p < c.top_p
                p = torch.zeros_like(p).scatter(0, order, torch.where(keep, sorted_p, torch.zeros_like(sorted_p)))
            assert int(toks[k]) == int(torch.multinomial(p, 1, generator=generator(seed))), (k, c)
        # the all-hot batch (no copy of the logits, no division at temperature 1) draws the same
        hot = [0, 4]
        alone = draw(x[hot], [configs[k] for k in hot], [generator(seeds[k]) for k in hot])
        assert alone.tolist() == toks[hot].tolist()
