"""Chess-v0 and ChessEndgame-v0 against the real stockfish binary (Debian's package).

The expert tests use fewer seeds than the other games (Stockfish searches take most of the time);
the 100-seed figures are measured with ``python -m tests.envs.games.play`` (see the report).
"""

from __future__ import annotations

import chess
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import turngym
from tests.envs.games.test_games import _rollout
from tests.conftest import require
from tests.envs.games.play import success_rate
from turngym.core.registry import find_program
from turngym.envs.games.chess_games import skill_pick

CHESS = ["turngym/ChessEndgame-v0", "turngym/Chess-v0"]


@pytest.fixture(autouse=True)
def _stockfish():
    require(find_program("stockfish") is not None, "the stockfish program is not installed (apt-get install stockfish)")


@pytest.mark.parametrize("env_id", CHESS)
def test_same_seed_same_game(env_id):
    a, b = turngym.make(env_id), turngym.make(env_id)
    try:
        first = _rollout(a, 3, 6)
        assert first == _rollout(b, 3, 6)
        assert first == _rollout(a, 3, 6)  # a reused env: the engine's hash is cleared at reset
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("env_id", CHESS)
def test_different_seeds_differ(env_id):
    env = turngym.make(env_id)
    try:
        assert len({env.reset(seed=s)[1]["instance_hash"] for s in range(10)}) == 10
    finally:
        env.close()


@pytest.mark.parametrize("env_id", CHESS)
def test_illegal_moves_are_invalid_actions(env_id):
    env = turngym.make(env_id)
    try:
        env.reset(seed=0)
        fen = env.unwrapped.board.fen()
        for reply in ("[a1a1]", "[Ke9]", "no move", "[e2e5]"):
            obs, reward, terminated, _, info = env.step(reply)
            assert info["action_error"] and reward == -1.0 and not terminated
            assert env.unwrapped.board.fen() == fen
            env.unwrapped._invalid_count = 0
    finally:
        env.close()


def test_moves_in_san_and_uci_and_black_replies():
    env = turngym.make("turngym/Chess-v0")
    try:
        env.reset(seed=0)
        obs, reward, terminated, _, info = env.step("I will open with [e4]")
        board = env.unwrapped.board
        assert "action_error" not in info and board.move_stack[0] == chess.Move.from_uci("e2e4")
        assert len(board.move_stack) == 2 and board.turn == chess.WHITE and "Black played" in obs.last_text
        assert "action_error" not in env.step("[g1f3]")[4]
    finally:
        env.close()


@pytest.mark.parametrize("env_id", CHESS)
def test_gymnasium_checker_passes(env_id):
    env = turngym.make(env_id).unwrapped
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_close_ends_the_engine_and_is_safe_twice():
    env = turngym.make("turngym/ChessEndgame-v0")
    env.reset(seed=0)
    engine = env.unwrapped._engine
    assert engine is not None
    env.close()
    env.close()
    assert env.unwrapped._engine is None and engine.protocol.returncode.done()


def test_endgame_positions_are_legal_and_have_the_asked_piece():
    env = turngym.make("turngym/ChessEndgame-v0", piece="R", defender="random")
    try:
        for seed in range(20):
            env.reset(seed=seed)
            board = env.unwrapped.board
            assert board.is_valid() and not board.is_check() and board.turn == chess.WHITE
            assert sorted(p.symbol() for p in board.piece_map().values()) == ["K", "R", "k"]
    finally:
        env.close()


def test_mate_wins_and_loss_loses():
    env = turngym.make("turngym/ChessEndgame-v0")
    try:
        env.reset(seed=0)
        game = env.unwrapped
        game.board = chess.Board("7k/8/6K1/8/8/8/8/Q7 w - - 0 1")
        obs, reward, terminated, _, info = env.step("[Qa8#]")
        assert reward == 1.0 and terminated and info["success"] is True and "checkmate" in obs.last_text
    finally:
        env.close()


def test_skill_pick_follows_stockfish_weakness():
    rng = np.random.default_rng(0)
    scores = [50, 40, -300, -900]
    strong = [skill_pick(scores, 19, rng) for _ in range(200)]
    weak = [skill_pick(scores, 0, rng) for _ in range(200)]
    assert set(strong) <= {0, 1} and max(weak) >= 1  # bad blunders only at low levels
    assert skill_pick([10, 10, 10, 10], 5, np.random.default_rng(1)) in range(4)


@pytest.mark.parametrize(("kwargs", "seeds"), [({"piece": "Q"}, 100), ({"piece": "R"}, 20)])
def test_endgame_expert_mates(kwargs, seeds):
    rate, turns, _ = success_rate("turngym/ChessEndgame-v0", "expert", range(seeds), **kwargs)
    assert rate >= 0.95 and turns < 30


def test_chess_expert_beats_the_default_opponent():
    rate, _, _ = success_rate("turngym/Chess-v0", "expert", range(3))
    assert rate == 1.0


@pytest.mark.parametrize(("env_id", "seeds"), [("turngym/ChessEndgame-v0", 20), ("turngym/Chess-v0", 2)])
def test_random_agent_fails(env_id, seeds):
    rate, _, _ = success_rate(env_id, "random", range(seeds))
    assert rate < 0.5
