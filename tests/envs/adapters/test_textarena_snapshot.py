"""TextArena snapshots: a restored engine replays, here and in another process; each env owns its random streams.

The games are a sample, not every one of the 202 that run here: playing the snapshot check over all of
them takes about 190 s on this machine (making the word games dominates: the Wordle and DontSayIt
"hardcore" variants take 8 s each), so the sample covers each kind of state the adapter saves: a
deterministic puzzle, random tiles and cards, a bound ``random.random`` (Secretary), ``numpy.random`` and
a 5 MB dictionary (SpellingBee), a 235k-word list (Hangman hardcore), a deck shuffled in place (Kuhn
Poker), opponents of 2, 3, 4 and 6 players, and games whose observation does not show the learner's move.
"""

from __future__ import annotations

import base64
import json
import pickle
import random
import subprocess
import sys
import threading

import numpy as np
import pytest

import turngym
from tests.conftest import IN_CI, REPO
from turngym.core.env import instance_hash
from turngym.core.errors import SnapshotError, SnapshotUnsupported
from turngym.core.registry import _module_present
from turngym.envs.adapters.registry import turngym_id
from turngym.envs.adapters.textarena import TextArenaEnv

if not _module_present("textarena"):  # fails in CI, skips locally (as test_textarena.py)
    if IN_CI:
        pytest.fail("required in CI: textarena is not installed (pip install 'turngym[textarena]')")
    pytest.skip("textarena is not installed (pip install 'turngym[textarena]')", allow_module_level=True)

import textarena as ta

SAMPLE = [
    "TowerOfHanoi-v0", "2048-v0-ultra-easy", "Blackjack-v0", "Minesweeper-v0-small", "FrozenLake-v0",
    "GuessTheNumber-v0", "Mastermind-v0", "Secretary-v0", "SpellingBee-v0", "Hangman-v0-hardcore",
    "TicTacToe-v0", "ConnectFour-v0", "KuhnPoker-v0", "LiarsDice-v0", "Battleship-v0", "IndianPoker-v0",
    "SimpleNegotiation-v0", "Set-v0", "ThreePlayerGOPS-v0", "Taboo-v0", "SecretMafia-v0",
]  # fmt: skip


def _make(game: str, **kwargs):
    return turngym.make(turngym_id(game), **kwargs)


def _outcome(result: tuple) -> list:
    obs, reward, terminated, truncated, info = result
    return [obs.model_dump(mode="json"), float(reward), terminated, truncated, json.dumps(info, default=str)]


def _instance(env) -> str:
    return instance_hash(env.unwrapped._task_id(), env.unwrapped.instance_state())


def _record(env, seed: int, *, snapshots: bool = True, max_moves: int = 8):
    """An episode of random candidate moves from ``reset(seed)``: its moves, their outcomes and, before
    each move, the env's snapshot and instance hash."""
    env.reset(seed=seed)
    rng = random.Random(seed)
    moves, outcomes, snaps = [], [], []
    for _ in range(max_moves):
        if snapshots:
            snaps.append((env.snapshot(), _instance(env)))
        candidates = env.unwrapped.legal_actions() or ["[0]"]
        moves.append(candidates[rng.randrange(len(candidates))])
        outcomes.append(_outcome(env.step(moves[-1])))
        if outcomes[-1][2] or outcomes[-1][3]:
            break
    return moves, outcomes, snaps


@pytest.mark.parametrize("game", SAMPLE)
def test_a_restored_snapshot_replays_in_this_env_and_a_fresh_one_and_another_move_diverges(game):
    env = _make(game)
    moves, outcomes, snaps = _record(env, seed=1)
    assert _record(_make(game), seed=1, snapshots=False)[:2] == (moves, outcomes)  # snapshots change nothing
    t = min(3, len(moves) - 1)  # a turn with a move after it
    data, instance = snaps[t]
    fresh = _make(game)
    for target in (env, fresh):  # env has finished its episode: restore goes back into it
        target.restore(data)
        assert _instance(target) == instance
        assert [_outcome(target.step(m)) for m in moves[t:]] == outcomes[t:]
    env.restore(data)
    env.step(moves[t])
    after = env.snapshot()
    env.restore(data)
    other = next((m for m in env.unwrapped.legal_actions() or [] if m != moves[t]), "[not a move]")
    diverged = _outcome(env.step(other))
    # another move shows in the observation, or (where the game answers with the opponent's move only) the state
    assert diverged != outcomes[t] or env.snapshot() != after


def test_a_snapshot_restores_into_an_env_made_in_another_process():
    jobs, expected = [], []
    for game in ("Secretary-v0", "SpellingBee-v0", "2048-v0-ultra-easy", "KuhnPoker-v0", "Taboo-v0"):
        moves, outcomes, snaps = _record(_make(game), seed=2)
        t = min(2, len(moves) - 1)
        jobs.append({"id": turngym_id(game), "data": base64.b64encode(snaps[t][0]).decode(), "moves": moves[t:]})
        expected.append([snaps[t][1], json.loads(json.dumps(outcomes[t:]))])
    secretary = _make("Secretary-v0")  # its draws come from a bound random.random, fixed when the game is made
    secretary.reset(seed=4)
    draws = secretary.unwrapped._ta.state.game_state["draws"]
    code = """
import base64, json, sys, turngym
from tests.envs.adapters.test_textarena_snapshot import _instance, _outcome
secretary = turngym.make("textarena/Secretary-v0")  # the first TextArena env of this process
secretary.reset(seed=4)
out = {"draws": secretary.unwrapped._ta.state.game_state["draws"], "replays": []}
for job in json.loads(sys.stdin.read()):
    env = turngym.make(job["id"])
    env.restore(base64.b64decode(job["data"]))
    out["replays"].append([_instance(env), [_outcome(env.step(m)) for m in job["moves"]]])
print(json.dumps(out))
"""
    run = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(jobs), capture_output=True, text=True, cwd=REPO, check=True
    )
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["replays"] == expected
    assert got["draws"] == draws


def _stepper(env, seed: int, log: list, max_moves: int = 8):
    """Play ``_record``'s episode one move per ``next()``, appending each outcome to ``log``."""
    obs, info = env.reset(seed=seed)
    log.append([info["instance_hash"], obs.last_text])
    rng = random.Random(seed)
    for _ in range(max_moves):
        yield
        candidates = env.unwrapped.legal_actions() or ["[0]"]
        log.append(_outcome(env.step(candidates[rng.randrange(len(candidates))])))
        if log[-1][2] or log[-1][3]:
            return


def test_envs_stepped_in_turn_draw_as_each_alone_and_a_restore_disturbs_no_other_env():
    players = [("2048-v0-ultra-easy", 5), ("2048-v0-ultra-easy", 6), ("Blackjack-v0", 5), ("KuhnPoker-v0", 5),
               ("Secretary-v0", 5), ("LiarsDice-v0", 5), ("SecretMafia-v0", 5)]  # fmt: skip
    alone = []
    for game, seed in players:
        log: list = []
        for _ in _stepper(_make(game), seed, log):
            pass
        alone.append(log)
    logs: list[list] = [[] for _ in players]
    envs = [_make(game) for game, _ in players]
    steppers = [_stepper(env, seed, log) for env, (_, seed), log in zip(envs, players, logs, strict=True)]
    random.seed(7)
    np.random.seed(7)
    rounds = draws = 0
    while steppers:
        rounds += 1
        for stepper in list(steppers):
            random.random()  # the caller's draws between steps reach no env
            np.random.random()
            draws += 1
            if next(stepper, "done") == "done":
                steppers.remove(stepper)
        if rounds == 2:  # restore 2048 (seed 5) to its state now, in the middle of everyone's episodes
            envs[0].restore(envs[0].snapshot())
    assert logs == alone
    py, npy = random.Random(7), np.random.RandomState(7)  # and no env drew from the caller's streams
    for _ in range(draws):
        py.random(), npy.random()
    assert random.getstate() == py.getstate()
    assert np.random.get_state()[1].tolist() == npy.get_state()[1].tolist()


def test_the_restored_random_streams_are_what_the_game_draws_from():
    for game, stochastic in [("2048-v0-ultra-easy", True), ("Blackjack-v0", True), ("TowerOfHanoi-v0", False)]:
        env = _make(game)
        moves, outcomes, snaps = _record(env, seed=1)
        t = min(2, len(moves) - 1)
        env.restore(snaps[t][0])
        env.unwrapped._streams.seed(999)  # other draws from here on: a stochastic game goes another way
        assert ([_outcome(env.step(m)) for m in moves[t:]] != outcomes[t:]) == stochastic, game


def test_word_lists_and_dictionaries_are_named_in_a_snapshot_not_copied():
    for game, name in [("SpellingBee-v0", "dictionary"), ("Hangman-v0-hardcore", "word_list")]:
        env = _make(game)
        resource = env.unwrapped._resources[name]
        before = pickle.dumps(resource)
        assert len(before) > 2_000_000
        _, _, snaps = _record(env, seed=0)
        assert all(len(data) < 100_000 for data, _ in snaps)
        assert pickle.dumps(resource) == before  # play leaves it as it was made: naming it is exact


def _center(observation: str) -> str:
    return "[4]"


class _Juror(ta.Agent):
    """An offline TextArena agent; TextArena's own Debate jury asks online LLMs."""

    def __call__(self, observation: str) -> str:
        return "Affirmative"


class AgentJury:
    """A Debate jury of TextArena agents."""

    def __init__(self, jury_size: int, options: list[str]) -> None:
        self.jurors, self.options = [_Juror() for _ in range(jury_size)], options

    def evaluate(self, context: str) -> dict[str, float]:
        return {o: float(o == "Affirmative") for o in self.options}


class LockedJury(AgentJury):
    """A Debate jury that holds a lock, as a client with a worker thread does: it does not pickle."""

    def __init__(self, jury_size: int, options: list[str]) -> None:
        self.lock, self.options = threading.Lock(), options


def test_games_that_cannot_be_saved_say_why_and_picklable_opponents_are_saved():
    judged = TextArenaEnv(game="Debate-v0", num_players=2, game_kwargs={"jury_class": AgentJury})
    assert "Debate-v0" in judged.snapshot_unsupported and "'jury'" in judged.snapshot_unsupported
    with pytest.raises(SnapshotUnsupported, match="Debate-v0 engine holds a model client"):
        judged.snapshot()
    locked = TextArenaEnv(game="Debate-v0", num_players=2, game_kwargs={"jury_class": LockedJury})
    assert locked.snapshot_unsupported is None
    locked.reset(seed=0)
    with pytest.raises(SnapshotUnsupported, match=r"Debate-v0 cannot be snapshotted: TextArena's engine attribute "
                       r"'jury' \(a LockedJury\) does not pickle"):  # fmt: skip
        locked.snapshot()

    lambda_env = _make("TicTacToe-v0", opponent=lambda observation: "[4]")
    assert "its opponent <function" in lambda_env.unwrapped.snapshot_unsupported
    with pytest.raises(SnapshotUnsupported, match="module-level function"):
        lambda_env.snapshot()
    env = _make("TicTacToe-v0", opponent=_center)
    env.reset(seed=0)
    data = env.snapshot()
    first = _outcome(env.step("[0]"))
    env.restore(data)
    assert _outcome(env.step("[0]")) == first and "cell 4" in first[0]["messages"][0]["content"]


def _raise_at_open(observation: str) -> str:
    return "[raise 3]"  # IndianPoker: invalid when there is no bet to raise


def test_a_game_the_opponents_end_in_reset_ends_at_the_first_step_with_its_reward():
    env = _make("IndianPoker-v0", opponent=_raise_at_open)  # its two invalid moves end the game in reset
    obs, _ = env.reset(seed=0)
    assert "Game over" in obs.last_text
    data = env.snapshot()
    obs, reward, terminated, _, info = env.step("[check]")
    assert terminated and reward == info["rewards"][0] == 1 and info["success"] is True
    env.restore(data)
    assert _outcome(env.step("[fold]"))[1:4] == [1.0, True, False]


def test_a_snapshot_of_another_game_is_refused_with_the_arguments_to_use():
    tictactoe = TextArenaEnv(game="TicTacToe-v0", num_players=2)  # made directly: no id for restore to compare
    tictactoe.reset(seed=0)
    connect = TextArenaEnv(game="ConnectFour-v0", num_players=2)
    connect.reset(seed=0)
    before = connect.snapshot()
    with pytest.raises(SnapshotError, match=r"of TextArena's TicTacToe-v0 for 2 player\(s\), this env plays "
                       r"ConnectFour-v0 for 2: restore it into an env made with game='TicTacToe-v0', num_players=2"):  # fmt: skip
        connect.restore(tictactoe.snapshot())
    assert connect.snapshot() == before  # refused before anything changed
