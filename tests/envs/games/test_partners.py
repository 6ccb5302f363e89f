"""Dialogue partners (turngym.core.partner): the rule-based default, callables handed to the env (sync and
async), agent specs resolved by the runner, and a real model partner (a tiny random-init hf model, built
locally: no network) answering in a Twenty Questions episode played by the real runner."""

from __future__ import annotations

import asyncio

import pytest

import turngym
from turngym.core.errors import ConfigError
from turngym.core.partner import message_name
from turngym.core.types import Message

TQ = "turngym/TwentyQuestions-v0"


class Scripted:
    """A partner that answers with fixed replies in turn and records what it was asked."""

    def __init__(self, *replies: str, name: str = "scripted-partner") -> None:
        self.replies = replies
        self.name = name
        self.asked: list[list[Message]] = []

    def __call__(self, messages: list[Message]) -> str:
        self.asked.append(messages)
        return self.replies[(len(self.asked) - 1) % len(self.replies)]


class AsyncScripted(Scripted):
    async def __call__(self, messages: list[Message]) -> str:  # type: ignore[override]
        await asyncio.sleep(0)
        return super().__call__(messages)


@pytest.mark.parametrize("env_id", [TQ, "turngym/GuessMyCity-v0"])
def test_the_rule_oracle_is_the_default_and_is_named(env_id):
    env = turngym.make(env_id)
    env.reset(seed=0)
    question = next(iter(env.unwrapped.bank.questions))
    obs, reward, _, _, info = env.step(f"[ask {question}]")
    assert obs.messages[0].name == "rule-oracle" and info["partner"] == "rule-oracle"
    assert obs.last_text in ("Yes.", "No.") and reward == -1.0
    assert turngym.make(env_id, oracle="rule").unwrapped.description == env.unwrapped.description


def test_a_callable_oracle_answers_any_question_and_is_told_the_secret():
    oracle = Scripted("Yes, it certainly is.")
    env = turngym.make(TQ, oracle=oracle)
    env.reset(seed=2)
    game = env.unwrapped
    assert "Ask any yes/no question" in game.description and "scripted-partner" in game.description
    obs, reward, terminated, _, info = env.step("[ask Would it fit in a teacup?]")  # not in the rule oracle's list
    assert obs.messages[0].text == "Yes, it certainly is." and obs.messages[0].name == "scripted-partner"
    assert info["partner"] == "scripted-partner" and reward == -1.0 and not terminated
    system, question = oracle.asked[0]
    assert system.role == "system" and game.bank.items[game.secret] in system.text
    assert question.role == "user" and question.text == "Would it fit in a teacup?"


def test_guesses_are_judged_by_the_env_not_the_oracle():
    """The negative side: an oracle that says yes to everything does not make a wrong guess right."""
    env = turngym.make(TQ, oracle=Scripted("Yes!"))
    env.reset(seed=2)
    game = env.unwrapped
    wrong = next(n for i, n in enumerate(game.bank.items) if i != game.secret)
    obs, reward, terminated, _, info = env.step(f"[guess {wrong}]")
    assert not terminated and reward == -1.0 and "success" not in info and obs.messages[0].name is None
    obs, reward, terminated, _, info = env.step(f"[guess {game.bank.items[game.secret]}]")
    assert terminated and info["success"] is True


def test_an_async_partner_works_from_step_and_from_astep():
    oracle = AsyncScripted("No.")
    env = turngym.make(TQ, oracle=oracle)
    env.reset(seed=1)
    assert env.step("[ask is it big]")[0].last_text == "No."  # the env's private event loop

    async def play():
        await env.unwrapped.areset(seed=1)
        return await env.unwrapped.astep("[ask is it red]")

    assert asyncio.run(play())[0].last_text == "No." and len(oracle.asked) == 2


def test_a_spec_that_nobody_resolved_fails_when_the_partner_is_asked():
    env = turngym.make(TQ, oracle="hf:/no/such/model")
    env.reset(seed=0)
    assert "hf:/no/such/model" in env.unwrapped.description  # made, described: only asking needs the model
    with pytest.raises(ConfigError, match="make_partner"):
        env.step("[ask is it alive]")


def test_a_value_that_is_no_partner_is_refused():
    with pytest.raises(ConfigError, match="oracle=42 is not a partner"):
        turngym.make(TQ, oracle=42)


def test_partner_specs_must_name_an_llm_agent():
    from turngym.agents.partner import make_partner

    for bad in ("random", "scripted", {"temperature": 0}):
        with pytest.raises(ConfigError):
            make_partner(bad)


def test_snapshots_leave_the_partner_out_and_keep_the_env_s_own():
    oracle = Scripted("Yes.", "No.")
    env = turngym.make(TQ, oracle=oracle)
    env.reset(seed=3)
    env.step("[ask is it red]")
    data = env.snapshot()
    env.step("[ask is it big]")
    env.restore(data)
    assert env.unwrapped.partner is oracle


def test_a_model_customer_buys_on_accept_and_leaves_on_leave():
    buyer = Scripted("Hm, maybe.", "[accept] Deal.")
    env = turngym.make("turngym/CarDealer-v0", partner=buyer)
    env.reset(seed=6)
    game = env.unwrapped
    car = game.lot[0]
    obs, reward, terminated, _, _ = env.step(f"The {car.kind} for ${game.buyer.budget // 2:,}.")
    assert not terminated and obs.messages[0].text == "Hm, maybe." and obs.messages[0].name == "scripted-partner"
    obs, reward, terminated, _, info = env.step("It's a bargain, really.")  # the standing offer is accepted
    assert terminated and info["success"] is True and reward == pytest.approx(0.5)
    assert info["sale"]["price"] == game.buyer.budget // 2
    brief, first, answer, second = buyer.asked[1]  # the dialogue from the customer's side
    assert brief.role == "system" and f"${game.buyer.budget:,}" in brief.text and "[accept]" in brief.text
    assert (first.role, answer.role, second.role) == ("user", "assistant", "user")
    assert answer.text == "Hm, maybe." and second.text == "It's a bargain, really."

    env = turngym.make("turngym/CarDealer-v0", partner=Scripted("[accept]", "[leave] Bye."))
    env.reset(seed=6)
    obs, reward, terminated, _, _ = env.step("Hello!")  # [accept] with no offer standing buys nothing
    assert not terminated and reward == 0.0
    obs, reward, terminated, _, info = env.step("The SUV for $1.")
    assert terminated and info["success"] is False and reward == 0.0 and "left" in obs.last_text


def test_the_runner_builds_partners_before_any_episode():
    from turngym.agents.base import make_agent
    from turngym.agents.runner import group_tasks, run_episodes

    tasks = group_tasks(TQ, [0], env_kwargs={"oracle": "random"})
    with pytest.raises(ConfigError, match="cannot play a dialogue partner"):
        asyncio.run(run_episodes(tasks, make_agent("scripted")))


def test_a_tiny_hf_oracle_answers_in_a_runner_episode_as_masked_named_observations():
    """The whole path: the env kwargs hold an agent spec, the runner builds the hf partner from it, the env asks
    it through the callable, and its replies are the observations that the learner's token stream holds with
    mask 0, named after the partner. The learner is an LLM agent over a scripted backend with a real tokenizer,
    so its questions are known and valid."""
    from transformers import AutoTokenizer

    from tests.agents.conftest import tiny_model
    from tests.agents.test_conversation import ScriptedBackend
    from turngym.agents.llm import LLMAgent
    from turngym.agents.runner import group_tasks, run_episodes
    from turngym.agents.sampling import SamplingConfig

    path = tiny_model("tiny")
    spec = {"spec": f"hf:{path}", "temperature": 0.0, "max_new_tokens": 6}
    questions = ["[ask Is it alive?]", "[ask Could I lift it with one hand?]", "[ask Is it made of metal?]"]
    tok = AutoTokenizer.from_pretrained(path)
    learner = LLMAgent(backend=ScriptedBackend(tok, questions), sampling=SamplingConfig(max_new_tokens=32))
    tasks = group_tasks(TQ, [0, 1], env_kwargs={"oracle": spec}, max_turns=3)
    episodes = asyncio.run(run_episodes(tasks, learner, concurrency=1))  # the backend replies in turn
    for ep in episodes:
        assert ep.error is None and ep.env_kwargs == {"oracle": spec} and ep.trainable
        assert [t.action for t in ep.turns] == questions
        for turn in ep.turns:
            (answer,) = turn.observation
            assert turn.info["partner"] == "hf:tiny" and answer.name == message_name("hf:tiny") == "hf-tiny"
            assert answer.role == "user" and answer.text not in ("Yes.", "No.")  # the model's words, not the table's
            if turn.observation_span is None:  # the last turn: no observation appended after the episode ended
                continue
            start, end = turn.observation_span
            assert set(ep.mask[start:end]) == {0}
            assert answer.text in tok.decode(ep.tokens[start:end])
        acts = [ep.mask[s:e] for s, e in (t.action_span for t in ep.turns)]
        assert all(set(m) == {1} for m in acts)


def test_a_pool_kept_across_runs_builds_each_partner_once(monkeypatch):
    import turngym.agents.partner as partner_module
    from turngym.agents.base import make_agent
    from turngym.agents.runner import group_tasks, run_episodes

    built: list[str] = []

    def fake_make_partner(spec):
        built.append(spec)
        return Scripted("Yes.", name="fake")

    monkeypatch.setattr(partner_module, "make_partner", fake_make_partner)
    pool = partner_module.PartnerPool()
    assert pool.resolve({"oracle": "rule", "max_invalid_actions": 2}) == {"oracle": "rule", "max_invalid_actions": 2}
    tasks = group_tasks(TQ, [0, 1], env_kwargs={"oracle": "hf:some/model"}, max_turns=2)
    for _ in range(2):  # a training loop's iterations
        episodes = asyncio.run(run_episodes(tasks, make_agent("scripted"), partners=pool))
        assert all(ep.error is None and ep.turns[0].info["partner"] == "fake" for ep in episodes)
    assert built == ["hf:some/model"]


def test_eval_refuses_a_wrong_partner_spec_before_any_episode(tmp_path):
    from turngym.benchmarks.eval import eval_config

    for kwargs, match in [
        ({"oracle": "random"}, "cannot play a dialogue partner"),
        ({"oracle": f"hf:{tmp_path / 'nowhere'}"}, "does not exist"),
        ({"oracle": {"temperature": 0}}, "has no 'spec'"),
    ]:
        with pytest.raises(ConfigError, match=match):
            eval_config(agent="scripted", envs=[TQ], env_args=[kwargs])
    assert eval_config(agent="scripted", envs=[TQ], env_args=[{"oracle": "rule"}]).suite.envs[0].kwargs == {"oracle": "rule"}
