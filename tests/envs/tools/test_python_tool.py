"""PythonTool-v0 for real: the oracle solves tasks in both action formats, seeds fix the task, the
task's scorer decides, and the sync API works (its own loop, its own pool, cleaned up at close)."""

from __future__ import annotations

import os

import pytest

import turngym
from turngym.agents.base import make_agent
from turngym.agents.runner import EpisodeTask, run_episodes
from turngym.core.types import Message, ToolCall

pytestmark = pytest.mark.docker
ENV = "turngym/PythonTool-v0"


def test_registered_as_docker_tool_envs():
    for env_id in (ENV, "turngym/Terminal-v0", "turngym/HumanEvalMT-v0"):
        info = turngym.env_info(env_id)
        assert (info.modality, info.sandbox, info.expert is not None) == ("tool", "docker", True)
        assert "docker" in info.requires


async def test_oracle_solves_tasks_in_both_formats_and_seeds_fix_the_task():
    jobs = [
        EpisodeTask(env_id=ENV, env_kwargs={"action_format": fmt}, seed=s, episode_id=f"{fmt}/{s}", group_id=str(s))
        for s in range(6)
        for fmt in ("native", "tagged")
    ]
    episodes = await run_episodes(jobs, make_agent("scripted"), concurrency=4)
    assert all(e.success and e.total_return == 1.0 for e in episodes), [(e.episode_id, e.error) for e in episodes]
    by_seed: dict[int | None, set[str]] = {}
    for e in episodes:
        by_seed.setdefault(e.seed, set()).add(e.instance_hash)
    assert all(len(h) == 1 for h in by_seed.values())  # same seed, same task instance, whatever the format
    assert len({next(iter(h)) for h in by_seed.values()}) == 6  # different seeds, different tasks


def test_sync_api_tool_output_and_scoring():
    env = turngym.make(ENV, tasks=["basic_arithmetic"])
    try:
        obs, info = env.reset(seed=3)
        assert info["task"] == "basic_arithmetic" and {t.name for t in obs.tools} == {"python", "answer"}
        call = ToolCall(id="c1", name="python", arguments={"code": "import os; print(os.getuid(), 6 * 7)"})
        obs, reward, terminated, _, _ = env.step(Message(role="assistant", content="", tool_calls=[call]))
        assert obs.messages[0].role == "tool" and obs.messages[0].tool_call_id == "c1"
        assert obs.last_text.strip() == "1000 42" and not terminated
        answer = ToolCall(id="c2", name="answer", arguments={"answer": "not a number"})
        obs, reward, terminated, _, info = env.step(Message(role="assistant", content="", tool_calls=[answer]))
        assert terminated and reward == 0.0 and info["success"] is False
    finally:
        env.close()
        env.close()
    from turngym.sandboxes.reaper import list_sandboxes

    assert not [r for r in list_sandboxes() if r.owner_pid == str(os.getpid())]  # closed with the env
