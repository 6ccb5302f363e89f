"""``TurnEnv.snapshot``/``restore``: every game that declares support replays a restored episode exactly,
in a fresh env and in another process; the rest refuse with the reason; bad bytes fail clearly."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import turngym
from tests.conftest import REPO, require
from turngym import EpisodeOver, SnapshotError, SnapshotUnsupported
from turngym.core.checker import check_registered_env
from turngym.core.env import instance_hash
from turngym.core.registry import load_object
from turngym.core.wrappers import TurnLimit
from turngym.envs.games.maze import MazeEnv

#: every registered game of turngym/envs/games (a new game is covered without editing this file)
GAMES = sorted(
    e.id for e in turngym.list_envs(include_unavailable=True) if e.entry_point.startswith("turngym.envs.games.")
)
PREFIX, CONTINUATION = 3, 5


def _make(env_id: str, **kwargs):
    reason = turngym.env_info(env_id).unavailable_reason()
    require(reason is None, f"{env_id} cannot run here: {reason}")
    return turngym.make(env_id, **kwargs)


def _outcome(result) -> tuple:
    obs, reward, terminated, truncated, _ = result
    return obs.last_text, float(reward), terminated, truncated


def _random_legal(env, rng) -> str:
    legal = env.unwrapped.legal_actions()
    return legal[int(rng.integers(len(legal)))]


def _mid_episode(env, seed: int = 0):
    """Reset and play ``PREFIX`` random legal moves (fewer where the turn limit is shorter: Lookup's is 2),
    on the first seed whose episode is still running."""
    prefix = min(PREFIX, turngym.env_info(env.spec.id).max_turns - 1)
    for s in range(seed, seed + 20):
        _, info = env.reset(seed=s)
        rng = np.random.default_rng(1000 + s)  # default_rng(s) would replay the stream the env drew from
        if not any(_outcome(env.step(_random_legal(env, rng)))[2:] != (False, False) for _ in range(prefix)):
            return info, rng
    raise AssertionError("every seed's random prefix ended the episode")


def _continue(env, rng, n: int = CONTINUATION) -> tuple[list[str], list[tuple]]:
    actions, outcomes = [], []
    for _ in range(n):
        actions.append(_random_legal(env, rng))
        outcomes.append(_outcome(env.step(actions[-1])))
        if outcomes[-1][2] or outcomes[-1][3]:
            break
    return actions, outcomes


def _current_hash(env) -> str:
    return instance_hash(env.unwrapped._task_id(), env.unwrapped.instance_state())


def test_the_games_are_found_and_all_declare_support():
    assert {"turngym/GuessNumber-v0", "turngym/Maze-v0", "turngym/Chess-v0"} <= set(GAMES)
    for env_id in GAMES:
        cls = load_object(turngym.env_info(env_id).entry_point)
        assert cls.snapshot_unsupported is None, env_id


@pytest.mark.parametrize("env_id", GAMES)
def test_restore_into_a_fresh_env_replays_the_episode(env_id):
    env, fresh = _make(env_id), _make(env_id)
    try:
        _, rng = _mid_episode(env)
        data, instance = env.snapshot(), _current_hash(env)
        actions, recorded = _continue(env, rng)
        fresh.restore(data)
        assert _current_hash(fresh) == instance  # instance_state() now (TextNav's holds where things are)
        assert [_outcome(fresh.step(a)) for a in actions] == recorded
        env.restore(data)  # the original env, since gone further, goes back too
        assert [_outcome(env.step(a)) for a in actions] == recorded
    finally:
        env.close()
        fresh.close()


@pytest.mark.parametrize("env_id", GAMES)
def test_a_different_continuation_after_restore_diverges(env_id):
    env = _make(env_id)
    try:
        _mid_episode(env)
        data = env.snapshot()
        legal = env.unwrapped.legal_actions()
        first = _outcome(env.step(legal[0]))
        answers = set()
        for other in legal[1:20] or ["not a move"]:  # one legal move (a dead end): an invalid reply differs
            env.restore(data)
            answers.add(_outcome(env.step(other))[0])
        assert answers - {first[0]}, f"every other action was answered with {first[0]!r}"
        env.restore(data)  # the snapshot is not used up: the first branch replays
        assert _outcome(env.step(legal[0])) == first
    finally:
        env.close()


RESTORE_ELSEWHERE = """
import json, sys
import turngym
for env_id, path, actions in json.load(sys.stdin):
    env = turngym.make(env_id)
    env.restore(open(path, "rb").read())
    out = []
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(a)
        out.append([obs.last_text, float(reward), terminated, truncated])
    print(json.dumps(out))
"""


def test_restore_in_another_process_replays_the_episode(tmp_path):
    games = [g for g in GAMES if turngym.env_info(g).unavailable_reason() is None]
    jobs, want = [], []
    for i, env_id in enumerate(games):
        env = turngym.make(env_id)
        _, rng = _mid_episode(env, seed=10)
        path = tmp_path / f"{i}.snapshot"
        path.write_bytes(env.snapshot())
        actions, recorded = _continue(env, rng)
        env.close()
        jobs.append([env_id, str(path), actions])
        want.append([list(o) for o in recorded])
    done = subprocess.run(
        [sys.executable, "-c", RESTORE_ELSEWHERE],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == want


def test_turn_limit_counters_survive_restore():
    env, fresh = (
        turngym.make("turngym/GuessNumber-v0", max_turns=4),
        turngym.make("turngym/GuessNumber-v0", max_turns=4),
    )
    env.reset(seed=0)
    wrong = f"[{1 if env.unwrapped.secret != 1 else 2}]"
    for _ in range(2):
        assert env.step(wrong)[2:4] == (False, False)
    data = env.snapshot()
    fresh.restore(data)
    for e in (env, fresh):
        assert e.step(wrong)[2:4] == (False, False)
        _, _, terminated, truncated, info = e.step(wrong)  # turn 4 of 4
        assert (terminated, truncated, info["success"]) == (False, True, False)
        with pytest.raises(EpisodeOver, match="truncated"):
            e.step(wrong)
    fresh.restore(data)  # back before the truncation: it plays again
    assert fresh.step(wrong)[2:4] == (False, False)


def test_a_finished_episode_restores_finished():
    env, fresh = turngym.make("turngym/GuessNumber-v0"), turngym.make("turngym/GuessNumber-v0")
    env.reset(seed=0)
    assert env.step(f"[{env.unwrapped.secret}]")[2]
    fresh.restore(env.snapshot())
    with pytest.raises(EpisodeOver):
        fresh.step("[1]")


def test_bad_bytes_raise_a_clear_error():
    env = turngym.make("turngym/GuessNumber-v0")
    env.reset(seed=0)
    data = env.snapshot()
    other = turngym.make("turngym/Maze-v0")
    other.reset(seed=0)
    magic, rest = data.split(b"\n", 1)
    header, payload = rest.split(b"\n", 1)
    newer = json.dumps(json.loads(header) | {"version": 99}).encode()
    cases = {
        b"not a snapshot at all": "not a turngym snapshot",
        "text": "not a turngym snapshot",
        other.snapshot(): "the snapshot is of turngym/Maze-v0, not turngym/GuessNumber-v0",
        magic + b"\n" + newer + b"\n" + payload: "format version 99",
        magic + b"\n{oops\n" + payload: "header is corrupt",
        data[:-20]: "corrupt snapshot",
        turngym.make("turngym/GuessNumber-v0", high=16).snapshot(): 'made with arguments {"high": 16}',
        turngym.make("turngym/GuessNumber-v0", max_turns=3).snapshot(): '"max_turns": 3',
        turngym.make("turngym/GuessNumber-v0", max_turns=None).snapshot(): '"max_turns": null',
        env.unwrapped.snapshot(): "taken through the wrappers [], this env has ['TurnLimit']",
    }
    fresh = turngym.make("turngym/GuessNumber-v0")
    for bad, message in cases.items():
        with pytest.raises(SnapshotError, match="restore") as e:
            fresh.restore(bad)
        assert message in str(e.value), str(e.value)
        assert isinstance(e.value, ValueError)
    with pytest.raises(SnapshotError, match=r"TurnLimit\(max_turns=10\), this env has max_turns=3"):
        TurnLimit(turngym.make("turngym/GuessNumber-v0").unwrapped, 3).restore(data)
    fresh.restore(data)  # nothing above changed the env
    assert _current_hash(fresh) == env.reset(seed=0)[1]["instance_hash"]


def test_unsupported_envs_say_why():
    from turngym.envs.tools.sandboxed import SandboxEnv
    from turngym.envs.web.base import BrowserEnv
    from turngym.serve.remote import RemoteEnv

    for cls, why in [
        (SandboxEnv, "Docker sandbox"),
        (BrowserEnv, "browser"),
        (RemoteEnv, "server"),
    ]:
        assert why in cls.snapshot_unsupported

    class Undeclared(turngym.TurnEnv):
        pass

    for call in (lambda env: env.snapshot(), lambda env: env.restore(b"")):
        with pytest.raises(SnapshotUnsupported, match="does not declare snapshot support") as e:
            call(Undeclared())
        assert isinstance(e.value, NotImplementedError) and "replay its actions" in str(e.value)

    class InDocker(Undeclared):
        snapshot_unsupported = SandboxEnv.snapshot_unsupported

    with pytest.raises(SnapshotUnsupported, match="InDocker.*cannot be snapshotted: its state lives in a Docker"):
        InDocker().snapshot()


class ForgetfulMaze(MazeEnv):
    """A broken snapshot: the agent's position is left out, so a restored env starts from cell 0."""

    snapshot_exclude = ("position",)


def test_envs_check_replays_snapshots():  # (every registered env's check: tests/envs/test_check_all.py)
    turngym.register("snapshottest/ForgetfulMaze-v0", ForgetfulMaze, max_turns=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        problems = check_registered_env("snapshottest/ForgetfulMaze-v0")
    assert len(problems) == 1, problems
    assert problems[0].startswith("snapshot and restore: seed 0: restored into a fresh env, step 4 ")
    assert "the observation" in problems[0] and "snapshot() must save every attribute" in problems[0]
