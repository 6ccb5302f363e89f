"""The text worlds (ScienceWorld, TextWorldExpress) on their real JVMs: experts, seeds and splits, and the
JVM's lifecycle (one per env, gone after close, after its owner is SIGKILLed, restarted after a crash)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import turngym
from tests.envs.textworlds.conftest import alive, java_children
from turngym.core.registry import load_object
from turngym.sandboxes.processes import reap_orphans, runtime_dir

TWX = "twx/coin-v0"
SW = "scienceworld/lifespan-shortest-lived-v0"  # the cheapest task to load


def play_expert(env, seed: int) -> dict:
    """The registered expert's episode of ``seed``; its last info."""
    obs, _ = env.reset(seed=seed)
    policy = load_object(turngym.env_info(env.spec.id).expert)(env.unwrapped)
    while True:
        obs, _, terminated, truncated, info = env.step(policy(obs))
        if terminated or truncated:
            return info


def wait_gone(pid: int, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not alive(pid)


@pytest.mark.parametrize(
    "game", ["cookingworld", "twc", "coin", "mapreader", "arithmetic", "sorting", "simonsays", "peckingorder"]
)
def test_twx_expert_solves_two_seeds(game):
    env = turngym.make(f"twx/{game}-v0")
    try:
        for seed in (0, 1):
            info = play_expert(env, seed)
            assert info["success"] is True, (game, seed, info)
    finally:
        env.close()


@pytest.mark.parametrize("task", ["lifespan-shortest-lived", "find-animal"])
def test_scienceworld_expert_solves_a_seed(task):
    env = turngym.make(f"scienceworld/{task}-v0")
    try:
        info = play_expert(env, 0)
        assert info["success"] is True and info["score"] == 1.0, info
    finally:
        env.close()


def test_textworld_game_is_made_from_the_seed_and_its_walkthrough_wins():
    env = turngym.make("textworld/custom-v0")
    try:
        obs, info = env.reset(seed=0)
        again, info2 = env.reset(seed=0)
        assert obs == again and info["instance_hash"] == info2["instance_hash"]
        assert play_expert(env, 0)["success"] is True
    finally:
        env.close()


def test_scienceworld_seed_picks_a_variation_of_the_split_and_splits_are_disjoint():
    train = turngym.make(SW)
    test = turngym.make(SW, split="test")
    try:
        server = train.unwrapped.engine.server
        server.load("lifespan-shortest-lived", 0, "", False)
        splits = {name: set(getattr(server, f"getVariations{name}")()) for name in ("Train", "Dev", "Test")}
        assert not (
            splits["Train"] & splits["Dev"] or splits["Train"] & splits["Test"] or splits["Dev"] & splits["Test"]
        )
        assert set().union(*splits.values()) == set(range(server.getTaskMaxVariations("lifespan-shortest-lived")))
        seen = {}
        for seed in range(6):
            obs, info = train.reset(seed=seed)
            seen[seed] = (train.unwrapped.instance["variation"], info["instance_hash"], obs.last_text)
            assert seen[seed][0] in splits["Train"]
        assert len({v for v, _, _ in seen.values()}) >= 3  # the seed is used
        for seed in (0, 3):  # the same seed again: the same variation, hash and first observation
            obs, info = train.reset(seed=seed)
            assert (train.unwrapped.instance["variation"], info["instance_hash"], obs.last_text) == seen[seed]
        for seed in range(4):
            test.reset(seed=seed)
            assert test.unwrapped.instance["variation"] in splits["Test"]
    finally:
        train.close()
        test.close()


def test_scienceworld_describes_a_variation_the_same_way_every_time():
    """The engine lists a room's objects in hash-set order: with Java's random identity hashes the order
    changed from one load to the next (find-* tasks), now it does not, in one JVM or across two."""
    texts = []
    for _ in range(2):
        env = turngym.make("scienceworld/find-non-living-thing-v0")
        try:
            texts += [env.reset(seed=0)[0].last_text for _ in range(3)]
        finally:
            env.close()
    assert len(set(texts)) == 1


def test_twx_seed_picks_a_game_seed_of_the_split():
    env = turngym.make(TWX, split="test")
    try:
        server = env.unwrapped.engine.server
        server.load("coin", "")
        folds = [set(server.getSeedsTrain()), set(server.getSeedsDev()), set(server.getSeedsTest())]
        assert not (folds[0] & folds[1] or folds[0] & folds[2] or folds[1] & folds[2])
        games = set()
        for seed in range(4):
            _, info = env.reset(seed=seed)
            games.add(env.unwrapped.instance["seed"])
            assert env.unwrapped.instance["seed"] in folds[2]
            assert env.reset(seed=seed)[1]["instance_hash"] == info["instance_hash"]
        assert len(games) >= 3
    finally:
        env.close()


def test_bad_arguments_name_the_fix():
    with pytest.raises(ValueError, match="split='valid' is not one of"):
        turngym.make(SW, split="valid")
    with pytest.raises(ValueError, match="has no game 'pacman'"):
        turngym.make("twx/coin-v0", game="pacman")


def test_one_jvm_per_env_across_episodes_and_none_after_close():
    before = set(java_children())
    env = turngym.make(TWX)
    jvm = env.unwrapped.engine.pid
    assert set(java_children()) - before == {jvm}
    for seed in range(4):
        env.reset(seed=seed)
        env.step("[look around]")
    assert set(java_children()) - before == {jvm}
    assert env.unwrapped.engine.starts == 1
    env.close()
    env.close()  # twice is safe
    assert wait_gone(jvm, 10)
    assert set(java_children()) - before == set()


@pytest.mark.parametrize("env_id", [TWX, SW])
def test_a_jvm_killed_mid_episode_ends_only_that_episode(env_id):
    env = turngym.make(env_id)
    try:
        env.reset(seed=0)
        env.step("[look around]")
        dead = env.unwrapped.engine.pid
        os.kill(dead, signal.SIGKILL)
        assert wait_gone(dead, 10)
        obs, reward, terminated, truncated, info = env.step("[look around]")  # no exception
        assert truncated and not terminated and reward == 0.0
        assert info["success"] is False and "the next reset starts a fresh JVM" in info["error"]
        assert "engine failed" in obs.last_text
        info = play_expert(env, 0)  # the next episode runs on a new JVM
        assert info["success"] is True
        assert env.unwrapped.engine.starts == 2 and env.unwrapped.engine.pid != dead
        assert java_children() == [env.unwrapped.engine.pid]
    finally:
        env.close()


OWNER = """
import sys, time, turngym
env = turngym.make("twx/coin-v0")
env.reset(seed=0)
print(env.unwrapped.engine.pid, flush=True)
time.sleep(600)
"""


def test_the_jvm_goes_when_its_owner_is_sigkilled():
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
    try:
        jvm = int(owner.stdout.readline())
        assert alive(jvm) and java_children(owner.pid) == [jvm]
        assert any(p.name.startswith(f"{owner.pid}-") for p in runtime_dir("jvm").glob("*.json"))
    finally:
        owner.kill()
        owner.wait()
    reap_orphans("jvm")  # what the next start does; the JVM may have gone by itself already (its stdin closed)
    assert wait_gone(jvm, 10)
    assert not any(p.name.startswith(f"{owner.pid}-") for p in runtime_dir("jvm").glob("*.json"))
