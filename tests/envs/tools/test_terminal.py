"""Terminal-v0 for real: the oracle solves every shipped task, and doing nothing solves none."""

from __future__ import annotations

import pytest

from turngym.agents.base import make_agent
from turngym.agents.runner import EpisodeTask, run_episodes
from turngym.envs.tools.terminal import load_task, tasks

pytestmark = pytest.mark.docker
ENV = "turngym/Terminal-v0"


def test_ships_at_least_ten_complete_tasks():
    assert len(tasks()) >= 10
    for name in tasks():
        task = load_task(name)
        assert task.instruction.strip() and task.read("check.sh") and task.read("solution.sh"), name


async def test_oracle_solves_every_task_concurrently():
    # native tool calls for every task; tagged blocks for a few
    jobs = [EpisodeTask(env_id=ENV, env_kwargs={"task": t}, episode_id=f"native/{t}") for t in tasks()]
    jobs += [
        EpisodeTask(env_id=ENV, env_kwargs={"task": t, "action_format": "tagged"}, episode_id=f"tagged/{t}")
        for t in tasks()[:3]
    ]
    episodes = await run_episodes(jobs, make_agent("scripted"), concurrency=6)
    failed = {e.episode_id: (e.error, [t.observation[-1].text[-300:] for t in e.turns]) for e in episodes if not e.success}
    assert not failed
    assert all(e.total_return == 1.0 and e.num_turns == 2 for e in episodes)


async def test_submitting_without_working_fails_every_task():
    from turngym.core.registry import make

    env = make(ENV)
    try:
        for name in tasks():
            obs, info = await env.areset(seed=tasks().index(name))
            assert info["task"] == name and obs.tools
            call = {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "submit"}]}
            from turngym.core.types import Message

            obs, reward, terminated, _truncated, info = await env.astep(Message.model_validate(call))
            assert terminated and reward == 0.0 and info["success"] is False, f"{name}: the checker passed untouched work"
    finally:
        await env.aclose()


async def test_commands_run_in_the_sandbox_and_tagged_errors_are_observations():
    from turngym.core.registry import make

    env = make(ENV, task="hello-file", action_format="tagged")
    try:
        await env.areset(seed=0)
        obs, reward, terminated, _, info = await env.astep("<bash>echo hi > note; cat note; exit 4</bash>")
        assert "hi" in obs.last_text and "exit code 4" in obs.last_text and reward == 0 and not terminated
        obs, _, _, _, info = await env.astep("I will not use tags")
        assert "action_error" in info and not terminated
        obs, reward, terminated, _, info = await env.astep("<bash>echo 'Hello, world!' > hello.txt</bash>")
        obs, reward, terminated, _, info = await env.astep("<submit>done</submit>")
        assert terminated and reward == 1.0 and info["success"]
    finally:
        await env.aclose()


class _Vandal:
    """An agent that attacks its sandbox first (fork bomb, memory bomb, endless command, writes
    outside /work) and then does the task with the oracle's solution."""

    def __init__(self):
        from turngym.agents.base import Agent, Policy

        class VandalPolicy(Policy):
            def __init__(self, env):
                self.env = env.unwrapped
                self.moves = [
                    "bomb() { bomb | bomb & }; bomb; sleep 100",
                    "python3 -c \"x = []\nwhile True: x.append(b'x' * (32 << 20))\"",
                    "sleep 100000",
                    "echo evil > /etc/evil; echo evil > /tmp/evil",
                ]

            async def act(self, observation):
                from turngym.envs.tools.sandboxed import call_action

                if self.moves:
                    return call_action("native", "bash", "command", self.moves.pop(0), "bash")
                if self.moves is not None:
                    self.moves = None
                    return call_action("native", "bash", "command", self.env.task.read("solution.sh"), "bash")
                return call_action("native", "submit", None, "", "submit")

        class VandalAgent(Agent):
            name = "vandal"

            async def start(self, env, *, seed):
                return VandalPolicy(env)

        self.agent = VandalAgent()


async def test_attacks_on_the_sandbox_break_neither_the_pool_nor_the_run():
    kwargs = {"command_timeout": 3.0, "sandbox": {"memory": "256m", "pids": 128}}
    jobs = [EpisodeTask(env_id=ENV, env_kwargs=kwargs, seed=i, episode_id=f"vandal/{i}") for i in range(3)]
    jobs += [EpisodeTask(env_id=ENV, env_kwargs=kwargs, seed=i, episode_id=f"after/{i}") for i in range(3, 6)]
    episodes = await run_episodes(jobs, _Vandal().agent, concurrency=3)
    assert [e.error for e in episodes] == [None] * 6
    failed = {e.episode_id: [t.observation[-1].text[-200:] for t in e.turns] for e in episodes if not e.success}
    assert not failed
    fork, mem, endless, evil = (episodes[0].turns[i].observation[-1].text for i in range(4))
    assert "killed after 3s" in fork or "exit code" in fork
    # OOM-killed, or killed at the command timeout on a machine too loaded to reach the limit in 3 s;
    # the OOM kill itself is asserted with a long timeout in tests/sandboxes/test_docker.py
    assert "exit code -9" in mem or "killed after 3s" in mem
    assert "killed after 3s" in endless
    assert "Read-only file system" in evil
