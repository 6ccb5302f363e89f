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
from turngym.core.checker import check_registered_env
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
        obs, _ = ours.reset(seed=seed)
        theirs.reset(num_players=1, seed=seed)
        assert theirs.state.game_state == ours.unwrapped._ta.state.game_state
        for guess in (10, 5, 15, 3, 17):
            obs, reward, terminated, _, info = ours.step(f"[{guess}]")
            done, _ = theirs.step(f"[{guess}]")
            assert done == terminated
            if done:
                assert reward == theirs.state.rewards[0] and info["success"] == (reward == 1)
                break


def test_an_invalid_move_is_an_action_error_never_an_exception():
    env = turngym.make("textarena/TicTacToe-v0")
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("[42]")
    assert "invalid move" in info["action_error"].lower() and not terminated
    assert "Invalid action" in obs.last_text
    obs, reward, terminated, _, info = env.step("[4]")  # a legal move is accepted afterwards
    assert "action_error" not in info and "[Player 1]" in obs.last_text

    guess = turngym.make("textarena/GuessTheNumber-v0")
    guess.reset(seed=0)
    assert guess.step("[999]")[4]["action_error"]  # TextArena: outside the range
    *_, terminated, _, info = guess.step("no number at all")  # brackets added, still not a number
    assert terminated and info["action_error"] and info["success"] is False  # TextArena's allowance is 1


def test_gymnasium_checker_and_turngym_checker_pass():
    check_env(turngym.make("textarena/TicTacToe-v0").unwrapped, skip_render_check=True)
    assert check_registered_env("textarena/GuessTheNumber-v0", seeds=4, steps=4) == []
    assert check_registered_env("textarena/ConnectFour-v0", seeds=4, steps=4) == []


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
