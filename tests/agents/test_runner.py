"""The async rollout runner: concurrency, groups, timeouts, env errors, order, env reuse and closing."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

import turngym
from turngym.agents.base import Agent, Policy, make_agent
from turngym.agents.runner import EpisodeTask, group_tasks, run_episodes
from turngym.core.actions import BracketedMove
from turngym.core.types import Observation


class Probe(turngym.TurnEnv):
    """An async env whose behaviour each seed picks: seed 13 raises in step, seed 66 hangs in step,
    others count to 3 with a small sleep. Class counters see every instance."""

    action_format = BracketedMove(choices=["go"], example="[go]")
    in_flight = 0
    max_in_flight = 0
    created = 0
    closed = 0
    log: ClassVar[list[str]] = []

    def __init__(self, *, delay: float = 0.001, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        type(self).created += 1
        self.delay = delay
        self.seed_ = 0
        self.n = 0

    async def areset(self, *, seed=None, options=None):
        await super().areset(seed=seed)
        self.seed_, self.n = seed or 0, 0
        return Observation.text(f"seed {seed}: say [go] three times"), {}

    async def astep(self, action):
        self.action_format.parse(action)
        cls = type(self)
        cls.in_flight += 1
        cls.max_in_flight = max(cls.max_in_flight, cls.in_flight)
        try:
            if self.seed_ == 13:
                raise RuntimeError("the simulator crashed")
            if self.seed_ == 66:
                await asyncio.Event().wait()  # hangs forever
            await asyncio.sleep(self.delay * (1 + self.seed_ % 3))
        finally:
            cls.in_flight -= 1
        self.n += 1
        done = self.n >= 3
        return Observation.text(f"{self.n}"), 0.5, done, False, ({"success": True} if done else {})

    def instance_state(self):
        return self.seed_

    async def aclose(self) -> None:
        type(self).closed += 1


class GoAgent(Agent):
    """Says [go]; hangs on the observation of seed 77 (a stuck model server)."""

    name = "go"

    async def start(self, env, *, seed):
        class P(Policy):
            async def act(self, observation: Observation):
                if observation.last_text.startswith("seed 77"):
                    await asyncio.Event().wait()
                return "I [go]"

            def finish(self, episode):
                episode.tokens = [1, 2, 3]

        return P()


@pytest.fixture(autouse=True)
def probe_env():
    turngym.register("runnertest/Probe-v0", Probe, max_turns=10)
    Probe.in_flight = Probe.max_in_flight = Probe.created = Probe.closed = 0
    yield


def probe_tasks(seeds, **kw) -> list[EpisodeTask]:
    return group_tasks("runnertest/Probe-v0", seeds, **kw)


async def test_concurrency_slots_are_used_and_results_keep_task_order():
    tasks = probe_tasks(range(12))
    finished: list[str] = []
    eps = await run_episodes(tasks, GoAgent(), concurrency=4, on_episode=lambda e: finished.append(e.episode_id))
    assert Probe.max_in_flight == 4
    assert [e.episode_id for e in eps] == [t.episode_id for t in tasks]
    assert sorted(finished) == sorted(t.episode_id for t in tasks)
    assert finished != [t.episode_id for t in tasks]  # they finish out of order (seed-dependent delays)
    # one env per worker, reused across episodes, all closed at the end
    assert Probe.created == 4 and Probe.closed == 4
    e = eps[0]
    assert e.success is True and e.error is None and e.num_turns == 3 and e.total_return == 1.5
    assert e.prompt[0].text.startswith("seed 0") and e.task_id == "runnertest/Probe-v0" and e.instance_hash
    assert [t.action for t in e.turns] == ["I [go]"] * 3 and e.turns[-1].terminated and e.tokens == [1, 2, 3]
    assert set(e.timings) == {"env", "agent"} and e.wall_time >= e.timings["env"] > 0


async def test_groups_share_their_instance_hash():
    tasks = group_tasks("turngym/GuessNumber-v0", [0, 1, 2], group_size=3)
    eps = await run_episodes(tasks, make_agent("scripted"), concurrency=3)
    by_group: dict[str, set[str]] = {}
    for e in eps:
        by_group.setdefault(e.group_id, set()).add(e.instance_hash)
    assert len(by_group) == 3 and all(len(h) == 1 for h in by_group.values())
    assert len(set.union(*by_group.values())) == 3
    assert all(e.success for e in eps) and [e.seed for e in eps] == [0, 0, 0, 1, 1, 1, 2, 2, 2]


async def test_an_env_that_raises_ends_only_its_episode_and_is_recreated():
    tasks = probe_tasks([0, 13, 1, 2])
    eps = await run_episodes(tasks, GoAgent(), concurrency=1)
    bad = eps[1]
    assert bad.error.startswith("RuntimeError: the simulator crashed") and "env step" in bad.error
    assert bad.success is None and bad.num_turns == 0 and bad.prompt  # the reset went through
    assert [e.error for e in eps if e is not bad] == [None, None, None] and all(e.success for e in eps if e is not bad)
    assert Probe.created == 2 and Probe.closed == 2  # the broken env was dropped and replaced


async def test_turn_timeout_catches_a_hanging_agent_and_a_hanging_env():
    tasks = probe_tasks([0, 77, 66, 1])
    eps = await run_episodes(tasks, GoAgent(), concurrency=2, turn_timeout=0.2)
    assert "turn_timeout=0.2" in eps[1].error and "agent act" in eps[1].error and eps[1].num_turns == 0
    assert "turn_timeout=0.2" in eps[2].error and "env step" in eps[2].error
    assert eps[0].success and eps[3].success
    assert Probe.closed == Probe.created  # the hung env was closed too


async def test_episode_timeout():
    tasks = probe_tasks([0, 1]) + [EpisodeTask(env_id="runnertest/Probe-v0", seed=2, episode_id="slow", env_kwargs={"delay": 10})]
    eps = await run_episodes(tasks, GoAgent(), concurrency=3, episode_timeout=0.3)
    assert eps[2].error == "TimeoutError: the episode exceeded episode_timeout=0.3s"
    assert eps[0].success and eps[1].success


async def test_turn_limit_override_truncates():
    tasks = [EpisodeTask(env_id="runnertest/Probe-v0", seed=0, episode_id="short", max_turns=2)]
    (e,) = await run_episodes(tasks, GoAgent())
    assert e.num_turns == 2 and e.truncated and e.success is False


async def test_cancellation_closes_the_envs():
    tasks = probe_tasks([66, 66, 0])
    job = asyncio.ensure_future(run_episodes(tasks, GoAgent(), concurrency=3))
    while Probe.in_flight < 2:
        await asyncio.sleep(0.01)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert Probe.created == 3 and Probe.closed == 3


async def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="concurrency"):
        await run_episodes(probe_tasks([0]), GoAgent(), concurrency=0)
    with pytest.raises(ValueError, match="turn_timeout"):
        await run_episodes(probe_tasks([0]), GoAgent(), turn_timeout=0)


async def test_turn_timeout_applies_to_each_turn_not_the_sum():
    # 3 turns of ~0.08 s each: every turn is within 0.2 s although the episode takes longer
    tasks = [EpisodeTask(env_id="runnertest/Probe-v0", seed=0, episode_id="a", env_kwargs={"delay": 0.08})]
    (e,) = await run_episodes(tasks, GoAgent(), turn_timeout=0.2)
    assert e.error is None and e.success and e.wall_time > 0.2


async def test_a_turn_timeout_does_not_swallow_the_cancellation_of_the_run():
    tasks = probe_tasks([66, 0, 1, 2])
    job = asyncio.ensure_future(run_episodes(tasks, GoAgent(), concurrency=1, turn_timeout=0.05))
    await asyncio.sleep(0.01)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert Probe.closed == Probe.created


class SyncWithResource(turngym.TurnEnv):
    """A sync env that releases a resource in ``close`` (not ``aclose``)."""

    closed = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return Observation.text("say anything"), {}

    def step(self, action):
        return Observation.text("done"), 1.0, True, False, {"success": True}

    def close(self):
        type(self).closed += 1
        super().close()


async def test_sync_envs_get_their_own_close():
    turngym.register("runnertest/SyncRes-v0", SyncWithResource, max_turns=3)
    tasks = [EpisodeTask(env_id="runnertest/SyncRes-v0", seed=s, episode_id=str(s)) for s in range(4)]
    eps = await run_episodes(tasks, GoAgent(), concurrency=2)
    assert all(e.success for e in eps) and SyncWithResource.closed == 2
