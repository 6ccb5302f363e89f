"""The TextArena adapter: registration, seeds, the caller's RNG, invalid moves, opponents, word games."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import turngym
from tests.conftest import IN_CI, require
from turngym.core.registry import _module_present
from turngym.envs.adapters.registry import DATA, turngym_id

if not _module_present("textarena"):  # fails in CI, skips locally (require() for a whole module)
    if IN_CI:
        pytest.fail("required in CI: textarena is not installed (pip install 'turngym[textarena]')")
    pytest.skip("textarena is not installed (pip install 'turngym[textarena]')", allow_module_level=True)

# single-player games (Wordle is tested on its own below: it takes seconds to make)
SINGLE = ["GuessTheNumber-v0", "Mastermind-v0", "Minesweeper-v0-small", "FrozenLake-v0", "Hangman-v0",
          "Blackjack-v0", "TowerOfHanoi-v0"]
# two-player games: the learner against the default random opponent
MULTI = ["TicTacToe-v0", "ConnectFour-v0", "Nim-v0", "KuhnPoker-v0", "Battleship-v0", "LiarsDice-v0"]


def _episode(env, seed: int, pick_seed: int, max_steps: int = 300):
    """Play random legal moves from reset(seed); the observations, rewards and the last info."""
    obs, info = env.reset(seed=seed)
    trace, rng = [info["instance_hash"], obs.last_text], random.Random(pick_seed)
    for _ in range(max_steps):
        moves = env.unwrapped.legal_actions() or ["[0]"]
        obs, reward, terminated, truncated, info = env.step(moves[rng.randrange(len(moves))])
        trace += [obs.last_text, reward]
        if terminated or truncated:
            return trace, info, True
    return trace, info, False


def _global_rng_state():
    return random.getstate(), np.random.get_state()[1].tobytes()


def test_every_textarena_game_is_registered_with_a_reason_when_it_cannot_run():
    games = json.loads(DATA.read_text())["games"]
    every = turngym.list_envs(namespace="textarena", include_unavailable=True)
    runnable = turngym.list_envs(namespace="textarena")
    assert len(every) == len(games) >= 200
    assert len(runnable) >= 150
    ids = {info.id for info in every}
    assert {turngym_id(g) for g in SINGLE + MULTI + ["Wordle-v0"]} <= {info.id for info in runnable}
    assert not any(i.endswith(("-raw", "-train")) for i in ids), "the -raw/-train twins are not registered"
    assert "textarena/Taboo-v0-city-country" in ids  # a "/" in a TextArena id becomes "-"
    chess = turngym.env_info("textarena/Chess-v0").unavailable_reason()
    assert chess and "SyntaxError" in chess and sys.prefix not in chess  # Chess needs Python 3.12
    debate = turngym.env_info("textarena/Debate-v0").unavailable_reason()
    assert debate and debate.startswith("needs an online LLM")  # judged by an online LLM
    with pytest.raises(turngym.EnvUnavailable, match="OPENROUTER"):
        turngym.make("textarena/Debate-v0")
    for slow in ("Sokoban-v0-medium", "Sudoku-v0-hard"):  # minutes per reset on some seeds
        assert "too slowly" in turngym.env_info(f"textarena/{slow}").unavailable_reason()
    assert turngym.env_info("textarena/DontSayIt-v0-unlimited").unavailable_reason() is None
    assert turngym.env_info("textarena/TicTacToe-v0").kwargs == {"game": "TicTacToe-v0", "num_players": 2}


def test_importing_turngym_does_not_import_textarena():
    code = "import sys, turngym; turngym.list_envs(); print('textarena' in sys.modules, 'nltk' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("game", SINGLE + MULTI)
def test_same_seed_same_instance_and_observations_and_the_callers_rng_is_untouched(game):
    env = turngym.make(turngym_id(game))
    random.seed(1234)
    np.random.seed(1234)
    before = _global_rng_state()
    first, info, finished = _episode(env, seed=5, pick_seed=0)
    again, _, _ = _episode(env, seed=5, pick_seed=0)
    assert first == again
    assert finished and isinstance(info["success"], bool)
    other = turngym.make(turngym_id(game))  # a second instance, stepped interleaved, changes nothing
    other.reset(seed=99)
    other.step("[1]")
    assert _episode(env, seed=5, pick_seed=0)[0] == first
    assert _global_rng_state() == before
    env.close()
    other.close()


def test_seeds_draw_different_instances():
    env = turngym.make("textarena/GuessTheNumber-v0")
    secrets = {(env.reset(seed=s), env.unwrapped._ta.state.game_state["game_number"])[1] for s in range(12)}
    assert len(secrets) > 3
    hashes = {env.reset(seed=s)[1]["instance_hash"] for s in range(12)}
    assert len(hashes) == 12


def test_the_game_matches_textarena_own_loop_for_the_same_seed_and_moves():
    import textarena as ta

    ours = turngym.make("textarena/GuessTheNumber-v0")
    theirs = ta.make("GuessTheNumber-v0-raw")
    for seed in range(5):
        ours.reset(seed=seed)
        theirs.reset(num_players=1, seed=seed)
        assert theirs.state.game_state == ours.unwrapped._ta.state.game_state
        for guess in (10, 5, 15, 3, 17):
            _obs, reward, terminated, _, info = ours.step(f"[{guess}]")
            done, _ = theirs.step(f"[{guess}]")
            assert done == terminated
            if done:
                assert reward == theirs.state.rewards[0] and info["success"] == (reward == 1)
                break


def test_an_invalid_move_is_an_action_error_never_an_exception():
    env = turngym.make("textarena/TicTacToe-v0")
    env.reset(seed=0)
    obs, _, terminated, _, info = env.step("[42]")
    assert "invalid move" in info["action_error"].lower() and not terminated
    assert "Invalid action" in obs.last_text
    obs, _reward, terminated, _, info = env.step("[4]")  # a legal move is accepted afterwards
    assert "action_error" not in info and "[Player 1]" in obs.last_text

    guess = turngym.make("textarena/GuessTheNumber-v0")
    guess.reset(seed=0)
    assert guess.step("[999]")[4]["action_error"]  # TextArena: outside the range
    *_, terminated, _, info = guess.step("no number at all")  # brackets added, still not a number
    assert terminated and info["action_error"] and info["success"] is False  # TextArena's allowance is 1


def test_opponents_random_first_legal_and_callable():
    seen = []

    def always_center(observation: str) -> str:
        seen.append(observation)
        return "[4]"

    env = turngym.make("textarena/TicTacToe-v0", opponent=always_center)
    env.reset(seed=0)
    obs, *_ = env.step("[0]")
    assert seen and "Available Moves" in seen[0] and "placed their symbol (X) in cell 4" in obs.last_text

    first = turngym.make("textarena/TicTacToe-v0", opponent="first-legal")
    first.reset(seed=0)
    assert "cell 1" in first.step("[0]")[0].last_text  # the first free cell after 0
    with pytest.raises(ValueError, match="first-legal"):
        turngym.make("textarena/TicTacToe-v0", opponent="strongest")


def test_random_vs_random_episodes_finish_through_the_registered_env():
    for game in ("ConnectFour-v0", "KuhnPoker-v0", "Nim-v0"):
        env = turngym.make(turngym_id(game))
        results = [_episode(env, seed=s, pick_seed=s) for s in range(3)]
        assert all(finished for _, _, finished in results)
        assert all(isinstance(info["success"], bool) and "textarena" in info for _, info, _ in results)


def test_word_games_run_offline_on_the_built_nltk_words():
    import nltk

    try:
        words = nltk.corpus.words.words("en")
    except LookupError:
        words = []
    require(len(words) > 200_000, "the NLTK words corpus is missing: run scripts/setup/30-textarena-data.sh")
    env = turngym.make("textarena/Wordle-v0")
    before = _global_rng_state()
    obs, info = env.reset(seed=3)
    assert "5-letter word" in obs.last_text
    secret = env.unwrapped._ta.state.game_state["secret_word"]
    assert env.reset(seed=3)[1]["instance_hash"] == info["instance_hash"]
    obs, reward, terminated, _, info = env.step(f"[{secret}]")
    assert terminated and reward == 1 and info["success"] is True
    env.reset(seed=3)
    _, _, _, _, info = env.step("[zzzzz]")  # not an English word: TextArena rejects it
    assert "action_error" in info
    assert _global_rng_state() == before


def test_textarena_used_directly_still_draws_from_the_global_random():
    import textarena as ta

    turngym.make("textarena/GuessTheNumber-v0").reset(seed=0)  # the adapter has rebound TextArena's `random`
    direct = ta.make("GuessTheNumber-v0-raw")
    random.seed(77)
    expected = random.Random(77).randint(1, 20)
    direct.reset(num_players=1)  # no seed: TextArena draws from the global stream, as without turngym
    assert direct.state.game_state["game_number"] == expected


# -- bounded on bad input (issue 16) -------------------------------------------------------------------------
def _no_move(observation: str) -> str:
    return "no move"


def test_a_step_that_never_ends_is_cut_inside_the_game_and_the_episode_truncated():
    import threading
    import time

    # PublicGoodsGame: with every player eliminated TextArena's turn rotation loops forever
    env = turngym.make("textarena/PublicGoodsGame-v0", opponent=_no_move, step_time_limit=1.0)
    threads = set(threading.enumerate())
    env.reset(seed=0)
    for move in ["{hi}"] * 3 + ["[5]"] + ["{hi}"] * 3 + ["no contribution"] * 3:
        *_, terminated, truncated, info = env.step(move)
        assert not terminated and not truncated
    started = time.monotonic()
    obs, reward, terminated, truncated, info = env.step("no contribution")  # player 0, the last one, is out
    assert time.monotonic() - started < 5
    assert truncated and not terminated and reward == 0.0 and info["success"] is False
    assert "PublicGoodsGame-v0 took over 1 s for one step" in info["error"] and "step_time_limit" in info["error"]
    assert "The episode was stopped" in obs.last_text
    left = {t for t in threading.enumerate() if t not in threads}
    assert {t.name for t in left} <= {"turngym-textarena-deadline"}  # the idle watchdog; the game does not run on
    env.reset(seed=1)  # the env plays on
    assert env.step("{hi}")[2:4] == (False, False)


def test_opponents_that_never_give_the_turn_back_end_the_episode_truncated(monkeypatch):
    from turngym.envs.adapters import textarena

    monkeypatch.setattr(textarena, "MAX_OPPONENT_MOVES", 1)  # PublicGoodsGame: two opponents move after player 0
    env = turngym.make("textarena/PublicGoodsGame-v0")
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step("{hi}")
    assert truncated and not terminated and info["success"] is False
    assert "made 1 moves without giving player 0 the turn back" in info["error"]


@pytest.mark.parametrize("game", ["Secretary-v0", "Sokoban-v0", "ThreeCardMonte-v0"])
def test_reset_without_a_seed_follows_from_the_last_seed(game):
    from gymnasium.utils.env_checker import check_reset_seed_determinism

    env = turngym.make(turngym_id(game))
    check_reset_seed_determinism(env.unwrapped)  # reset(seed=123), reset(), twice: equal observations
    first = env.reset()[1]["instance_hash"]
    assert env.reset()[1]["instance_hash"] != first  # reset() draws a new game each time


def test_an_unlimited_game_plays_under_plain_gymnasium_make():
    import gymnasium

    env = gymnasium.make("textarena/DontSayIt-v0-unlimited")  # no turngym.make: TextArena's max_turns=None
    env.reset(seed=0)
    for _ in range(4):
        assert env.step("Tell me about your day")[2:4] == (False, False)
    check_env(env.unwrapped, skip_render_check=True)


def test_game_prints_go_to_the_log_not_stdout(capfd, caplog):
    import textarena as ta

    from turngym.envs.adapters.textarena import TextArenaEnv

    with caplog.at_level("INFO", logger="turngym.textarena"):
        env = TextArenaEnv(game="FrozenLake-v0", game_kwargs={"num_holes": 100})  # TextArena prints a warning
        env.reset(seed=0)
        env.step("[down]")
    assert capfd.readouterr().out == ""
    assert any("Too many holes requested (100)" in r.getMessage() for r in caplog.records)
    ta.make("FrozenLake-v0-raw", num_holes=100).reset(num_players=1, seed=0)  # TextArena used directly still prints
    assert "Too many holes" in capfd.readouterr().out


def test_a_malformed_move_the_game_punishes_by_its_own_rule_is_an_action_error():
    for game, error in [("Codenames-v0", "did not provide a valid clue"), ("Snake-v0", "Snake 0 died due to invalid")]:
        env = turngym.make(turngym_id(game))
        env.reset(seed=0)
        assert error in env.step("no move here")[4]["action_error"]
    poker = turngym.make("textarena/IndianPoker-v0")  # the random opponent reads "[bet X]" as "[bet 1]"
    obs, _ = poker.reset(seed=0)
    assert "Game over" not in obs.last_text
    assert "[raise 1]" in poker.unwrapped.legal_actions()  # the opponent opened with a bet


def test_free_text_games_declare_that_any_reply_is_a_move():
    assert turngym.make("textarena/SimpleNegotiation-v0").unwrapped.accepts_any_text is True
    assert turngym.make("textarena/TicTacToe-v0").unwrapped.accepts_any_text is False
    env = turngym.make("textarena/DontSayIt-v0")
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step("")
    assert "action_error" not in info and not terminated and not truncated


def test_a_second_env_of_a_game_is_a_copy_of_the_first_sharing_only_its_read_only_word_lists():
    from turngym.envs.adapters.textarena import TextArenaEnv

    first, second = (TextArenaEnv(game="Secretary-v0") for _ in range(2))
    assert first._ta is not second._ta
    assert first._ta.value_sampler.__self__ is first._streams.py  # its draws follow its own seed
    assert second._ta.value_sampler.__self__ is second._streams.py
    hangman = [TextArenaEnv(game="Hangman-v0-hardcore") for _ in range(2)]
    big = [name for name, value in vars(hangman[0]._ta).items() if isinstance(value, list) and len(value) > 1000]
    assert big and all(getattr(hangman[0]._ta, n) is getattr(hangman[1]._ta, n) for n in big)
    hangman[0].reset(seed=1)
    assert hangman[1].reset(seed=1)[0].last_text == hangman[0].reset(seed=1)[0].last_text
