"""Gymnasium's habits on turngym ids: ``max_episode_steps`` and ``max_turns`` in ``gymnasium.make`` as in
``turngym.make``, and a warning when an id is registered again. (Plugin ids in a fresh
``gymnasium.make``: tests/core/test_plugins.py.)"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium
import pytest

import turngym
from turngym.core.wrappers import TurnLimit
from tests.core.test_env import AsyncCounter, Counter

ID = "testgym/Counter-v0"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def counter():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a re-run of this module in one process
        turngym.register(ID, Counter, max_turns=3, kwargs={"target": 100})
        turngym.register("testgym/AsyncCounter-v0", AsyncCounter, max_turns=5)


def turns_until_truncated(env: gymnasium.Env) -> int:
    env.reset(seed=0)
    for n in range(1, 50):
        if env.step("[1]")[3]:
            return n
    raise AssertionError("never truncated")


@pytest.mark.parametrize("make", [gymnasium.make, turngym.make], ids=["gymnasium", "turngym"])
def test_the_turn_limit_is_set_alike_by_max_turns_and_max_episode_steps(make):
    assert turns_until_truncated(make(ID)) == 3
    for kwargs in ({"max_turns": 1}, {"max_episode_steps": 1}, {"max_turns": 7}, {"max_episode_steps": 7}):
        env = make(ID, **kwargs)
        # the limit is turngym's TurnLimit (async API included), never Gymnasium's TimeLimit around it
        assert isinstance(env, TurnLimit) and env.env is env.unwrapped, kwargs
        assert turns_until_truncated(env) == next(iter(kwargs.values())), kwargs
    assert not isinstance(make(ID, max_turns=None), gymnasium.Wrapper)


def test_max_episode_steps_serves_the_async_api():
    env = gymnasium.make("testgym/AsyncCounter-v0", max_episode_steps=2)

    async def drive():
        await env.areset(seed=0)
        await env.astep("[1]")
        return await env.astep("[1]")

    assert asyncio.run(drive())[3] is True


def test_max_turns_reaches_the_spec_not_the_constructor():
    env = gymnasium.make(ID, max_turns=2, target=50)
    assert env.unwrapped.target == 50
    assert env.spec.kwargs == {"target": 50, "max_turns": 2}
    assert turns_until_truncated(gymnasium.make(env.spec)) == 2  # the spec makes the same env again


def test_both_limits_at_once_must_agree():
    with pytest.raises(ValueError, match="max_episode_steps=2 and max_turns=3"):
        gymnasium.make(ID, max_episode_steps=2, max_turns=3)
    assert turns_until_truncated(gymnasium.make(ID, max_episode_steps=2, max_turns=2)) == 2


def test_registering_an_id_again_warns_with_the_previous_entry_point():
    turngym.register("testgym/Again-v0", "tests.core.test_env:Counter")
    with pytest.warns(UserWarning, match=r"'testgym/Again-v0' is registered again: .*tests\.core\.test_env:Counter"):
        turngym.register("testgym/Again-v0", AsyncCounter, max_turns=2)
    assert isinstance(turngym.make("testgym/Again-v0").unwrapped, AsyncCounter)
    assert turngym.env_info("testgym/Again-v0").max_turns == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        turngym.register("testgym/Again-v0", AsyncCounter, max_turns=2)  # the very same again: silent
    with pytest.warns(UserWarning, match="registered again"):
        turngym.register("testgym/Again-v0", AsyncCounter, max_turns=3)  # the same class, another limit


def test_a_first_registration_and_the_builtin_envs_do_not_warn():
    code = (
        "import warnings; warnings.simplefilter('error')\n"
        "import turngym\n"
        "turngym.list_envs(include_unavailable=True)\n"
        "turngym.register('fresh/Counter-v0', 'tests.core.test_env:Counter')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr


def test_an_unknown_namespace_is_still_gymnasiums_error():
    with pytest.raises(gymnasium.error.NamespaceNotFound):
        gymnasium.make("nosuchnamespacez9/Env-v0")
