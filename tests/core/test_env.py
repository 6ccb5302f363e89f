from __future__ import annotations

import asyncio
from typing import Any

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import turngym
from turngym.core.actions import BracketedMove
from turngym.core.errors import ActionError
from turngym.core.types import Observation


class Counter(turngym.TurnEnv):
    """Sync env: count up to a target by bracketed increments."""

    action_format = BracketedMove(choices=["1", "2"], example="[1]")

    def __init__(self, *, target: int = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.total = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.total = int(self.np_random.integers(0, 2))
        return Observation.text(f"total {self.total}"), {}

    def step(self, action):
        self.total += int(self.action_format.parse(action))
        if self.total > self.target:
            raise ActionError(f"overshot {self.target}")
        done = self.total == self.target
        return Observation.text(f"total {self.total}"), float(done), done, False, ({"success": True} if done else {})

    def instance_state(self):
        return self.total


class AsyncCounter(turngym.TurnEnv):
    """Async-only env: the sync API must work through the private loop."""

    action_format = BracketedMove(choices=["1"], example="[1]")

    async def areset(self, *, seed=None, options=None):
        await super().areset(seed=seed)
        self.total = 0
        await asyncio.sleep(0)
        return Observation.text("start"), {}

    async def astep(self, action):
        self.action_format.parse(action)
        self.total += 1
        await asyncio.sleep(0)
        return Observation.text(str(self.total)), 0.0, self.total >= 3, False, {}


def test_invalid_action_is_an_observation_not_an_exception():
    env = Counter(invalid_penalty=-0.5, max_invalid_actions=2)
    env.reset(seed=0)
    obs, reward, term, trunc, info = env.step("no brackets")
    assert "square brackets" in obs.last_text and reward == -0.5 and not term
    assert info["action_error"] and info["invalid_actions"] == 1
    obs, reward, term, trunc, info = env.step("[7]")
    assert term and info["success"] is False and "2 of 2" in obs.last_text


def test_env_logic_errors_count_as_invalid_actions():
    env = Counter(target=1)
    env.reset(seed=0)
    env.total = 0
    _, _, term, _, info = env.step("[2]")
    assert "overshot" in info["action_error"] and not term


def test_reset_gives_task_id_and_stable_instance_hash():
    env = Counter()
    hashes = {env.reset(seed=s)[1]["instance_hash"] for s in [3, 3, 3]}
    assert len(hashes) == 1
    assert len({env.reset(seed=s)[1]["instance_hash"] for s in range(20)}) == 2  # total is 0 or 1
    assert env.reset(seed=0)[1]["task_id"] == "Counter"


def test_async_only_env_has_a_sync_api_and_vice_versa():
    env = AsyncCounter()
    obs, info = env.reset(seed=1)
    assert obs.last_text == "start" and "instance_hash" in info
    assert env.step("[1]")[0].last_text == "1"
    assert env.step("oops")[4]["action_error"]
    env.close()
    env.close()  # safe twice

    async def drive():
        sync_env = Counter(target=2)
        await sync_env.areset(seed=0)
        sync_env.total = 0
        return await sync_env.astep("[2]")

    assert asyncio.run(drive())[2] is True


def test_sync_call_inside_a_running_loop_says_what_to_do():
    env = AsyncCounter()

    async def bad():
        env.reset(seed=0)

    with pytest.raises(RuntimeError, match="areset"):
        asyncio.run(bad())


def test_registered_env_works_with_gymnasium_make_and_turn_limit():
    turngym.register("testns/Counter-v0", Counter, max_turns=3, kwargs={"target": 100})
    env = gymnasium.make("testns/Counter-v0")
    env.reset(seed=0)
    results = [env.step("[1]") for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True]
    assert results[-1][4]["success"] is False
    env2 = turngym.make("testns/Counter-v0", max_turns=1)
    env2.reset(seed=0)
    assert env2.step("[1]")[3] is True


def test_async_wrapper_path():
    turngym.register("testns/AsyncCounter-v0", AsyncCounter, max_turns=2)
    env = turngym.make("testns/AsyncCounter-v0")

    async def drive():
        await env.areset(seed=0)
        await env.astep("[1]")
        return await env.astep("[1]")

    assert asyncio.run(drive())[3] is True


@pytest.mark.parametrize("env", [Counter(), AsyncCounter()], ids=["sync", "async"])
def test_gymnasium_checker_passes(env):
    check_env(env, skip_render_check=True)


def test_unknown_id_suggests_close_matches():
    with pytest.raises(turngym.RegistryError, match="GuessNumber"):
        turngym.make("turngym/GuesNumber-v0")


def test_public_api_is_what_we_mean():
    assert set(turngym.__all__) >= {
        "make", "register", "list_envs", "TurnEnv", "Observation", "Message", "ToolCall", "ToolSpec",
    }
    for name in turngym.__all__:
        assert hasattr(turngym, name), name


def test_async_close_reaches_a_sync_close_and_vice_versa():
    closed = []

    class SyncClose(Counter):
        def close(self):
            closed.append("sync")
            super().close()

    class AsyncClose(AsyncCounter):
        async def aclose(self):
            closed.append("async")

    turngym.register("testns/SyncClose-v0", SyncClose, max_turns=2)
    env = turngym.make("testns/SyncClose-v0")
    asyncio.run(env.aclose())
    AsyncClose().close()
    assert closed == ["sync", "async"]


def _play_out(env, action="[1]"):
    """Step ``env`` until the episode ends; the last result."""
    while True:
        result = env.step(action)
        if result[2] or result[3]:
            return result


@pytest.mark.parametrize("make_env", [lambda: Counter(target=2), AsyncCounter], ids=["sync", "async"])
def test_a_step_after_termination_is_refused_until_reset(make_env):
    env = make_env()
    env.reset(seed=0)
    assert _play_out(env)[2] is True
    with pytest.raises(turngym.EpisodeOver, match=r"after the episode ended \(terminated\).*call reset\(\)") as e:
        env.step("[1]")
    assert isinstance(e.value, RuntimeError)
    with pytest.raises(turngym.EpisodeOver):
        asyncio.run(env.astep("[1]"))
    env.reset(seed=0)
    assert env.step("[1]")[1] in (0.0, 1.0)  # a new episode plays again


def test_a_step_after_the_last_invalid_action_is_refused():
    env = Counter(max_invalid_actions=2)
    env.reset(seed=0)
    assert env.step("nope")[2] is False and env.step("nope")[2] is True
    with pytest.raises(turngym.EpisodeOver, match="terminated"):
        env.step("[1]")


def test_a_step_after_the_turn_limit_is_refused_until_reset():
    from turngym.core.wrappers import TurnLimit

    env = TurnLimit(Counter(target=100), max_turns=2)
    env.reset(seed=0)
    assert [env.step("[1]")[3] for _ in range(2)] == [False, True]
    with pytest.raises(turngym.EpisodeOver, match=r"truncated.*max_turns=2.*call reset\(\)"):
        env.step("[1]")
    with pytest.raises(turngym.EpisodeOver, match="max_turns=2"):
        asyncio.run(env.astep("[1]"))
    env.reset(seed=0)
    assert env.step("[1]")[3] is False


def test_make_vec_plays_text_envs_with_autoreset():
    vec = gymnasium.make_vec("turngym/GuessNumber-v0", num_envs=2, max_turns=2)
    try:
        obs, info = vec.reset(seed=[1, 2])
        assert len(obs) == 2 and all(isinstance(o, Observation) for o in obs)
        assert list(info["task_id"]) == ["turngym/GuessNumber-v0"] * 2
        truncated = [vec.step(("[50]", "[abc]"))[3].tolist() for _ in range(3)]
        assert truncated == [[False, False], [True, True], [False, False]]  # the third step resets both
        obs, reward, *_ = vec.step(("[50]", "[50]"))
        assert "50" in obs[0].last_text and reward.tolist() == [0.0, 0.0]
    finally:
        vec.close()
