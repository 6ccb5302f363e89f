"""The token-faithful conversation with a real tokenizer and real chat templates; the replies come
from a scripted backend (a real ``Backend`` that returns fixed texts, so the test knows them)."""

from __future__ import annotations

import asyncio

import pytest

from turngym.agents.conversation import Conversation, TemplateError
from turngym.agents.llm import Backend, Generation, LLMAgent
from turngym.agents.runner import group_tasks, run_episodes
from turngym.agents.sampling import SamplingConfig
from turngym.core.types import Message, ToolSpec, user

THINKING_REPLIES = [
    "<think>It is either low or high.</think>\n[50]",
    "<think>Now halve the interval.\nStill thinking.</think>\n[25]",
    "[12]",
    "<think>short</think>[80]",
]


class ScriptedBackend(Backend):
    """Replies with fixed texts in turn (tokenised once, EOS appended unless ``eos=False``) and
    records every prompt and generation."""

    name = "scripted-backend"

    def __init__(self, tokenizer, texts, *, eos: bool = True) -> None:
        self.tokenizer = tokenizer
        self.texts = texts
        self.eos = eos
        self.calls: list[tuple[list[int], Generation]] = []
        self._eos = tokenizer.convert_tokens_to_ids("<|im_end|>")

    async def generate(self, prompt, sampling, *, pattern=None, seed=None):
        text = self.texts[len(self.calls) % len(self.texts)]
        # tokenised as in context (after a special token), so no SentencePiece word-start marker
        ids = self.tokenizer.encode("<|im_end|>" + text, add_special_tokens=False)[1:]
        if self.eos:
            ids.append(self._eos)
        gen = Generation(ids=ids, logprobs=[-0.25 - 0.01 * i for i in range(len(ids))], eos_id=self._eos if self.eos else None)
        self.calls.append((list(prompt), gen))
        return gen


@pytest.fixture(scope="module")
def tok(tiny_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dir)


@pytest.fixture(scope="module")
def thinking_tok(thinking_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(thinking_dir)


def _play(tokenizer, texts, *, eos=True, turns=10, episodes=2):
    backend = ScriptedBackend(tokenizer, texts, eos=eos)
    agent = LLMAgent(backend=backend, sampling=SamplingConfig(max_new_tokens=64))
    tasks = group_tasks(
        "turngym/GuessNumber-v0", seeds=range(episodes), env_kwargs={"max_invalid_actions": 50}, max_turns=turns
    )
    eps = asyncio.run(run_episodes(tasks, agent, concurrency=1))
    return backend, eps


def _check_stream(backend, episodes):
    """Every prompt the backend got is the stream so far; every reply sits in the stream as returned."""
    calls = iter(backend.calls)
    for ep in episodes:
        assert ep.error is None
        assert len(ep.tokens) == len(ep.mask) == len(ep.logprobs)
        for turn in ep.turns:
            prompt, gen = next(calls)
            start, end = turn.action_span
            assert ep.tokens[:start] == prompt
            assert ep.tokens[start:end] == gen.ids
            assert ep.logprobs[start:end] == gen.logprobs
            assert ep.mask[start:end] == [1] * len(gen.ids)
        sampled = sum(e - s for s, e in (t.action_span for t in ep.turns))
        assert sum(ep.mask) == sampled  # nothing else has mask 1
        assert all(lp == 0.0 for lp, m in zip(ep.logprobs, ep.mask) if m == 0)


def test_append_only_template_stream_equals_full_render(tok):
    texts = ["[50]", "I think [25]", "[12] maybe", "[80]"]
    backend, eps = _play(tok, texts)
    _check_stream(backend, eps)
    for ep in eps:
        assert len(ep.turns) == 10
        # with an append-only template and replies that end with EOS, the incremental stream is
        # exactly the tokenisation of the whole conversation rendered at once
        messages = [{"role": "system", "content": ep_system(ep)}]
        messages.append({"role": "user", "content": ep.prompt[0].text})
        for t in ep.turns:
            messages.append({"role": "assistant", "content": t.action})
            messages.append({"role": "user", "content": t.observation[0].text})
        messages.pop()  # the last observation ends the episode and is not in the stream
        # the stream ends with the last reply's EOS, the full render with the template's newline after it
        rendered = tok.apply_chat_template(messages, tokenize=False)
        assert tok.encode(rendered, add_special_tokens=False)[: len(ep.tokens)] == ep.tokens
        assert tok.decode(ep.tokens) == rendered.removesuffix("\n")


def ep_system(ep) -> str:
    from turngym.core.registry import make
    from turngym.agents.llm import system_prompt

    env = make(ep.env_id)
    try:
        return system_prompt(env)
    finally:
        env.close()


def test_observation_spans_hold_the_template_suffix(tok):
    backend, eps = _play(tok, ["[50]"], turns=3, episodes=1)
    ep = eps[0]
    for t in ep.turns[:-1]:
        s, e = t.observation_span
        assert e == t.action_span[1] + (e - s) and s == t.action_span[1]
        assert tok.decode(ep.tokens[s:e]) == f"\n<|im_start|>user\n{t.observation[0].text}<|im_end|>\n<|im_start|>assistant\n"
    assert ep.turns[-1].observation_span is None


def test_reply_cut_by_token_limit_gets_the_end_of_turn_marker(tok):
    backend, eps = _play(tok, ["[50] and more"], eos=False, turns=3, episodes=1)
    _check_stream(backend, eps)
    ep = eps[0]
    s, e = ep.turns[0].observation_span
    assert tok.decode(ep.tokens[s:e]).startswith("<|im_end|>\n<|im_start|>user\n")


def test_template_that_drops_thinking_causes_no_drift(thinking_tok):
    tok = thinking_tok
    # the template is really not append-only: the earlier reply loses its <think> block
    base = [user("hi"), Message(role="assistant", content=THINKING_REPLIES[0])]
    as_dicts = [m.to_openai() for m in base]
    short = tok.apply_chat_template(as_dicts, tokenize=False)
    longer = tok.apply_chat_template([*as_dicts, {"role": "user", "content": "more"}], tokenize=False)
    assert "<think>" in short and "<think>" not in longer and not longer.startswith(short)

    backend, eps = _play(tok, THINKING_REPLIES, turns=10, episodes=2)
    _check_stream(backend, eps)
    for ep in eps:
        assert len(ep.turns) == 10
        text = tok.decode(ep.tokens)
        # every sampled thinking block is still in the stream, as sampled
        assert text.count("<think>") == sum("<think>" in t.action for t in ep.turns)
        for t in ep.turns[:-1]:
            s, e = t.observation_span
            assert tok.decode(ep.tokens[s:e]) == f"\n<|im_start|>user\n{t.observation[0].text}<|im_end|>\n<|im_start|>assistant\n"


def test_tools_reach_a_template_that_takes_them(tok):
    spec = ToolSpec(name="run", description="run code", parameters={"type": "object", "properties": {"code": {"type": "string"}}})
    conv = Conversation(tokenizer=tok, system="Use tools.", tools=[spec.to_openai()])
    conv.add_observation([user("go")])
    text = tok.decode(conv.tokens)
    assert '"name": "run"' in text and "<tools>" in text
    assert conv.spans == [("prompt", 0, len(conv.tokens))] and set(conv.mask) == {0}


def test_conversation_rejects_out_of_order_calls(tok):
    conv = Conversation(tokenizer=tok)
    with pytest.raises(TemplateError, match="add_reply before an observation"):
        conv.add_reply([1], [0.0])
    conv.add_observation([user("go")])
    with pytest.raises(ValueError, match="one per id"):
        conv.add_reply([1, 2], [0.0])
    conv.add_reply([1], [-1.0])
    with pytest.raises(TemplateError, match="add_reply before an observation"):
        conv.add_reply([1], [-1.0])


def test_sampling_config_from_cli_options():
    cfg, rest = SamplingConfig.split_options({"temperature": "0.5", "stop": "a,b", "max_new_tokens": "9", "device": "cpu"})
    assert cfg.temperature == 0.5 and cfg.stop == ("a", "b") and cfg.max_new_tokens == 9
    assert rest == {"device": "cpu"}
    with pytest.raises(ValueError):
        SamplingConfig(top_p=0)


def test_render_memo_is_bounded_and_least_recently_used_out():
    from turngym.agents.conversation import _RenderMemo

    memo = _RenderMemo(max_chars=25)
    calls = []

    def render(text):
        return lambda: (calls.append(text), (text, [len(text)]))[1]

    assert memo.get("a", render("x" * 9)) == ("x" * 9, [9])
    assert memo.get("a", render("other")) == ("x" * 9, [9]) and len(calls) == 1  # a hit renders nothing
    memo.get("b", render("y" * 9))
    memo.get("a", render("x" * 9))  # a is now the most recently used
    memo.get("c", render("z" * 9))  # 30 chars > 25: b, the least recently used, goes
    assert memo.chars <= 25
    memo.get("b", render("y" * 9))
    assert calls[-1] == "y" * 9 and len(calls) == 4
