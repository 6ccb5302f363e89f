"""The eval config from options (``--env``, ``--episodes`` on explicit seeds), readable resume diffs, and the
count of replies cut at max_new_tokens."""

from __future__ import annotations

import asyncio

import pytest

from turngym.agents.llm import Generation
from turngym.benchmarks.eval import check_agent_spec, eval_config, execute, plan_run, resume_changes
from turngym.benchmarks.suite import Suite, SuiteEnv, env_suite
from turngym.benchmarks.summary import cut_warning, summarize
from turngym.core.config import MISSING, config_diff, describe_change
from turngym.core.errors import ConfigError
from turngym.core.types import Episode, Turn

GN = "turngym/GuessNumber-v0"


def test_episodes_takes_the_first_listed_seeds_and_refuses_more():
    suite = Suite(name="s", episodes=5, envs=[SuiteEnv(id=GN, seeds=[7, 8, 9]), SuiteEnv(id=GN, label="b")])
    listed, counted = suite.envs
    assert suite.seeds_for(listed) == [7, 8, 9] and suite.seeds_for(counted) == [0, 1, 2, 3, 4]
    assert suite.seeds_for(listed, 2) == [7, 8] and suite.seeds_for(counted, 2) == [0, 1]
    assert Suite(name="s", envs=[SuiteEnv(id=GN, seeds=[7, 8, 9], episodes=1)]).seeds_for(
        SuiteEnv(id=GN, seeds=[7, 8, 9], episodes=1)
    ) == [7]
    with pytest.raises(ConfigError, match=r"--episodes 4 asks for 4 .* only 3 seeds .* --episodes 3 or fewer"):
        suite.seeds_for(listed, 4)


def test_env_suite_from_ids_and_json_args(tmp_path):
    suite = env_suite([GN], [{"high": 16}])
    assert suite.name == "GuessNumber-v0" and suite.envs[0].kwargs == {"high": 16}
    two = env_suite([GN, GN], [{"high": 4}, {"high": 8}])
    assert [e.name for e in two.envs] == [f"{GN} #1", f"{GN} #2"] and two.envs[1].kwargs == {"high": 8}
    cfg = eval_config(agent="scripted", envs=[GN], env_args=['{"high": 4}'], episodes=3)
    plan = plan_run(cfg, tmp_path / "run")
    assert len(plan.tasks) == 3 and plan.tasks[0].env_kwargs == {"high": 4}
    summary = asyncio.run(execute(plan))
    assert summary.envs[GN].success_rate == 1.0 and summary.envs[GN].cut_reply_rate is None
    with pytest.raises(ConfigError, match="not both"):
        eval_config("smoke", agent="scripted", envs=[GN])
    with pytest.raises(ConfigError, match="not an object"):
        eval_config(agent="scripted", envs=[GN], env_args=["3"])


def test_agent_spec_is_checked_without_building_the_agent(tmp_path):
    with pytest.raises(ConfigError, match=r"--agent 'scriptd'.*Did you mean 'scripted'"):
        check_agent_spec("scriptd")
    with pytest.raises(ConfigError, match="does not exist"):
        check_agent_spec(f"hf:{tmp_path / 'nope'}")
    with pytest.raises(ConfigError, match="no config.json"):
        check_agent_spec(f"vllm:{tmp_path}")
    check_agent_spec("openai:http://127.0.0.1:1/v1#m")  # a server is asked only when the run starts


def test_config_diff_walks_lists_of_mappings_and_reads_unset_values():
    a = {"suite": {"envs": [{"id": "x", "kwargs": {"high": 16}}, {"id": "y"}]}, "episodes": None}
    b = {"suite": {"envs": [{"id": "x", "kwargs": {"high": 32}}, {"id": "y"}]}, "episodes": 6, "new": 1}
    assert config_diff(a, b) == [("suite.envs.0.kwargs.high", 16, 32), ("episodes", None, 6), ("new", MISSING, 1)]
    assert config_diff({"seeds": [1, 2]}, {"seeds": [1, 3]}) == [("seeds", [1, 2], [1, 3])]  # scalars: one leaf
    assert describe_change("episodes", None, 6) == "episodes: not set before, now 6"
    assert describe_change("x", 2, MISSING) == "x: was 2, now not set"


def test_resume_changes_name_the_env_and_the_key(tmp_path):
    stored = eval_config(agent="scripted", envs=[GN], env_args=['{"high": 16}']).model_dump(mode="json")
    now = eval_config(agent="scripted", envs=[GN, "turngym/Wordle-v0"], episodes=6, concurrency=2)
    lines = resume_changes(stored, now)
    assert "episodes (--episodes): not set before, now 6" in lines
    assert any(line.startswith("suite envs: stored turngym/GuessNumber-v0; now") for line in lines)
    assert not any("concurrency" in line for line in lines)  # a resume may change it
    now = eval_config(agent="scripted", envs=[GN], env_args=['{"high": 32}'])
    assert resume_changes(stored, now) == [f"suite env '{GN}' (envs.0) kwargs.high: stored 16, now 32"]


def test_cut_replies_are_counted_per_env_and_warned_above_a_fifth():
    def episode(env: str, cuts: list[bool | None]) -> Episode:
        turns = [Turn(index=i, action="", info={} if c is None else {"reply_cut": c}) for i, c in enumerate(cuts)]
        return Episode(episode_id=f"{env}/{len(cuts)}", env_id=env, turns=turns)

    summary = summarize([episode("a", [True, True, False]), episode("b", [False] * 9 + [True]), episode("c", [None])])
    assert (summary.envs["a"].cut_replies, summary.envs["a"].cut_reply_rate) == (2, 2 / 3)
    assert summary.envs["b"].cut_reply_rate == 0.1 and summary.envs["c"].cut_reply_rate is None
    assert summary.overall.cut_replies == 3
    text = cut_warning(summary)
    assert text is not None and "a 67%" in text and "b " not in text
    assert "sampling.max_new_tokens" in text and "constrain" in text
    assert cut_warning(summarize([episode("b", [False, True, False, False, False])])) is None


def test_a_generation_is_cut_when_the_budget_ended_it():
    assert Generation(ids=[1, 2], logprobs=[0, 0], finish_reason="length").cut_at_budget(8)
    assert not Generation(ids=[1, 2], logprobs=[0, 0], finish_reason="stop").cut_at_budget(2)
    assert Generation(ids=[1, 2], logprobs=[0, 0]).cut_at_budget(2)  # not reported: no EOS, budget used up
    assert not Generation(ids=[1, 2], logprobs=[0, 0], eos_id=2).cut_at_budget(2)
