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


# -- "module:id" ids and where an env comes from ------------------------------------------------------

MODULE_SRC = """
import turngym
turngym.register("modid/Counter-v0", "tests.core.test_env:Counter", max_turns=2)
"""


@pytest.fixture
def env_module(tmp_path, monkeypatch):
    """A module of the user's own, ``modid_q3k``, whose import registers ``modid/Counter-v0``."""
    (tmp_path / "modid_q3k.py").write_text(MODULE_SRC)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "modid_q3k", raising=False)
    return tmp_path


def test_a_module_id_imports_the_module_first(env_module):
    env = turngym.make("modid_q3k:modid/Counter-v0")
    assert "modid_q3k" in sys.modules and env.spec.id == "modid/Counter-v0"
    assert turns_until_truncated(env) == 2
    info = turngym.env_info("modid_q3k:modid/Counter-v0")
    assert info.id == "modid/Counter-v0" and info.source == "tests"  # the entry point's top-level package


def test_a_module_id_names_a_missing_module_and_a_missing_id(env_module):
    with pytest.raises(
        turngym.RegistryError, match=r"'nosuchmodz9' in 'nosuchmodz9:modid/Counter-v0' is no importable"
    ):
        turngym.make("nosuchmodz9:modid/Counter-v0")
    with pytest.raises(
        turngym.RegistryError, match=r"importing 'modid_q3k' registered none\. Did you mean 'modid/Counter-v0'"
    ):
        turngym.make("modid_q3k:modid/Countr-v0")


def test_a_module_id_finds_a_module_in_the_current_directory_from_the_cli(tmp_path):
    (tmp_path / "cwdenvs_q3k.py").write_text(MODULE_SRC)
    turngym_cli = Path(sys.executable).with_name("turngym")
    r = subprocess.run(
        [str(turngym_cli), "envs", "info", "cwdenvs_q3k:modid/Counter-v0"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert r.returncode == 0, r.stderr
    assert "tests.core.test_env:Counter" in r.stdout or "modid/Counter-v0" in r.stdout


@pytest.mark.parametrize(
    ("id_", "expected"),
    [
        ("mypkg.envs:mypkg/Maze-v0", ("mypkg.envs", "mypkg/Maze-v0")),
        ("mypkg/Maze-v0", (None, "mypkg/Maze-v0")),
        ("remote/ws://127.0.0.1:8000", (None, "remote/ws://127.0.0.1:8000")),
        ("remote/ws://host:8000/turngym/Terminal-v0", (None, "remote/ws://host:8000/turngym/Terminal-v0")),
        ("ws://host:8000", (None, "ws://host:8000")),
    ],
)
def test_only_a_module_path_and_a_namespaced_id_make_a_module_id(id_, expected):
    from turngym.core.registry import split_module_id

    assert split_module_id(id_) == expected


def test_remote_ids_with_a_port_are_still_remote():
    info = turngym.env_info("remote/ws://127.0.0.1:8000")
    assert info.source == "remote" and info.entry_point == "turngym.serve.remote:make_remote"


def test_the_source_of_an_env(tmp_path, monkeypatch):
    from turngym.core import registry

    assert turngym.env_info("turngym/GuessNumber-v0").source == "turngym"
    assert turngym.register("srctest/A-v0", "mypkgz9.envs:A").source == "mypkgz9"
    assert turngym.register("srctest/B-v0", "__main__:B").source == "__main__ (a script)"
    # a package installed with a turngym.envs entry point: its distribution, version and entry point
    (tmp_path / "srcplug_q3k.py").write_text(
        "import turngym\ndef register_envs():\n    turngym.register('srcplug/A-v0', 'srcplug_q3k:A')\n"
    )
    dist = tmp_path / "srcplug_dist-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: srcplug-dist\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text("[turngym.envs]\nsrcplug = srcplug_q3k:register_envs\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    assert turngym.env_info("srcplug/A-v0").source == "srcplug-dist 1.2.3 (turngym.envs entry point 'srcplug')"
