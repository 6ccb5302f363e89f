"""The rule-based text games: seeding, invalid actions, Gymnasium's checker, expert and random agents.

Chess games have their own file (test_chess.py): they need the stockfish binary and are slower.
"""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import turngym
from tests.envs.games.play import success_rate

GAMES = [
    "turngym/GuessNumber-v0",
    "turngym/Wordle-v0",
    "turngym/Maze-v0",
    "turngym/TextNav-v0",
    "turngym/Lookup-v0",
    "turngym/TwentyQuestions-v0",
    "turngym/GuessMyCity-v0",
]


def _rollout(env, seed: int, n: int) -> tuple[str, list[str]]:
    """The instance hash and the observation texts of ``n`` seeded random legal moves."""
    obs, info = env.reset(seed=seed)
    texts = [obs.last_text]
    rng = np.random.default_rng(seed)
    for _ in range(n):
        legal = env.unwrapped.legal_actions()
        obs, _, terminated, truncated, _ = env.step(legal[int(rng.integers(len(legal)))])
        texts.append(obs.last_text)
        if terminated or truncated:
            break
    return info["instance_hash"], texts


@pytest.mark.parametrize("env_id", GAMES)
def test_same_seed_same_instance_and_observations(env_id):
    a, b = turngym.make(env_id), turngym.make(env_id)
    for seed in (0, 7):
        assert _rollout(a, seed, 8) == _rollout(b, seed, 8)
    assert _rollout(a, 7, 8) == _rollout(a, 7, 8)  # a reused env resets fully


@pytest.mark.parametrize("env_id", GAMES)
def test_different_seeds_give_different_instances(env_id):
    env = turngym.make(env_id)
    hashes = {env.reset(seed=s)[1]["instance_hash"] for s in range(20)}
    assert len(hashes) >= 15


@pytest.mark.parametrize("env_id", GAMES)
@pytest.mark.parametrize("reply", ["no brackets at all", "[]", "[zzzzz zz]", "[ask what is the meaning of life]"])
def test_invalid_replies_are_observations_not_exceptions(env_id, reply):
    env = turngym.make(env_id)
    env.reset(seed=1)
    obs, reward, terminated, truncated, info = env.step(reply)
    assert info["action_error"] and "Invalid action" in obs.last_text
    assert reward == env.unwrapped.invalid_penalty and not terminated


@pytest.mark.parametrize("env_id", GAMES)
def test_gymnasium_checker_passes(env_id):
    check_env(turngym.make(env_id).unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", GAMES)
def test_expert_succeeds_on_100_seeds(env_id):
    rate, _, _ = success_rate(env_id, "expert", range(100))
    assert rate >= 0.95


@pytest.mark.parametrize("env_id", GAMES)
def test_random_agent_mostly_fails(env_id):
    rate, _, _ = success_rate(env_id, "random", range(100))
    assert rate < 0.5


@pytest.mark.parametrize("env_id", GAMES)
def test_legal_actions_are_all_valid(env_id):
    env = turngym.make(env_id)
    env.reset(seed=3)
    for action in env.unwrapped.legal_actions():
        env.reset(seed=3)
        assert "action_error" not in env.step(action)[4], action


def test_wordle_marks_repeated_letters_like_the_nyt_game():
    from turngym.envs.games.wordle import feedback

    assert feedback("speed", "abide") == "--Y-Y"  # one E in the answer: only the first E is marked
    assert feedback("geese", "those") == "---GG"  # the green E uses up the only other E
    assert feedback("crane", "crane") == "GGGGG"
    assert feedback("allee", "eagle") == "YY-YG"


def test_wordle_rewards_follow_lmrl_gym():
    env = turngym.make("turngym/Wordle-v0")
    env.reset(seed=0)
    answer = env.unwrapped.answer
    wrong = "crane" if answer != "crane" else "slate"
    assert env.step(f"[{wrong}]")[1] == -1.0
    obs, reward, terminated, _, info = env.step(f"[{answer}]")
    assert reward == 0.0 and terminated and info["success"] is True
    env.reset(seed=0)
    assert env.step("[qqqqq]")[4]["action_error"]  # not a word: no guess used
    assert env.unwrapped.guesses == []


def test_maze_walls_cost_a_move_and_keep_the_agent_in_place():
    env = turngym.make("turngym/Maze-v0")
    env.reset(seed=4)
    maze = env.unwrapped
    blocked = [d for d in ("up", "down", "left", "right") if f"[{d}]" not in maze.legal_actions()]
    start = maze.position
    obs, reward, terminated, _, info = env.step(f"[{blocked[0]}]")
    assert "wall" in obs.last_text and reward == -1.0 and maze.position == start and "action_error" not in info


def _expert_rewards(reward: str, seed: int) -> tuple[list[float], int]:
    """The expert's per-move rewards on Maze ``seed`` under ``reward``, and the start's path distance."""
    from turngym.envs.games.maze import expert, path_distances

    env = turngym.make("turngym/Maze-v0", reward=reward)
    obs, _ = env.reset(seed=seed)
    maze = env.unwrapped
    start_distance = path_distances(maze.open_dirs, maze.rows, maze.cols, maze.goal)[maze.start]
    policy, rewards, done = expert(maze), [], False
    while not done:
        obs, r, terminated, truncated, _ = env.step(policy(obs))
        rewards.append(r)
        done = terminated or truncated
    assert terminated, "the expert reaches the goal"
    return rewards, start_distance


@pytest.mark.parametrize("seed", [0, 3, 7])
def test_maze_shaped_reward_is_potential_based(seed):
    standard, d0 = _expert_rewards("standard", seed)
    shaped, same = _expert_rewards("shaped", seed)
    assert same == d0 > 0 and len(shaped) == len(standard)
    # potential -distance, gamma 1: every move's shaping telescopes to the start's distance
    assert sum(shaped) == sum(standard) + d0
    assert set(shaped) <= {0.0, -2.0, -1.0, 1.0} and shaped[-1] == 1.0
    # the expert explores: where it steps back from a dead end the shaped reward says so (-2), never in standard
    assert (-2.0 in shaped) == (len(standard) > d0) and -2.0 not in standard


def test_maze_shaped_reward_of_one_move_each_way():
    env = turngym.make("turngym/Maze-v0", reward="shaped")
    env.reset(seed=4)
    maze = env.unwrapped
    d = maze.to_goal
    moves = {a: maze.position + {"[up]": -maze.cols, "[down]": maze.cols, "[left]": -1, "[right]": 1}[a]
             for a in maze.legal_actions()}
    closer = next(a for a, cell in moves.items() if d[cell] < d[maze.position])
    here = maze.position
    reward = env.step(closer)[1]
    assert reward == (1.0 if maze.position == maze.goal else 0.0)
    if maze.position != maze.goal:
        back = {"[up]": "[down]", "[down]": "[up]", "[left]": "[right]", "[right]": "[left]"}[closer]
        assert env.step(back)[1] == -2.0 and maze.position == here
    with pytest.raises(ValueError, match="reward='dense'.*'standard'.*'shaped'"):
        turngym.make("turngym/Maze-v0", reward="dense")


def test_textnav_goal_needs_the_container_open():
    env = turngym.make("turngym/TextNav-v0")
    env.reset(seed=5)
    nav = env.unwrapped
    obj, box = nav.goal
    nav.where[obj] = ("hand", None)
    nav.room = nav.furniture[box][0]
    info = env.step(f"[put the {obj} in the {box}]")[4]
    assert "closed" in info["action_error"]
    assert env.step(f"[open {box}]")[1] == 0.0
    obs, reward, terminated, _, info = env.step(f"[put {obj} in {box}]")
    assert reward == 1.0 and terminated and info["success"] is True


def test_question_games_answer_from_the_table_and_end_on_the_right_guess():
    env = turngym.make("turngym/TwentyQuestions-v0")
    env.reset(seed=0)
    game = env.unwrapped
    name = game.bank.items[game.secret]
    alive = game.bank.questions["is it alive"] >> game.secret & 1
    obs, reward, terminated, *_ = env.step("[ask Is it ALIVE?]")
    assert obs.last_text == ("Yes." if alive else "No.") and reward == -1.0 and not terminated
    obs, reward, terminated, _, info = env.step(f"[guess {name.upper()}]")
    assert reward == 0.0 and terminated and info["success"] is True


def test_question_games_stop_after_twenty_turns():
    env = turngym.make("turngym/GuessMyCity-v0")
    env.reset(seed=0)
    results = [env.step("[ask is it on the coast]") for _ in range(20)]
    assert [r[3] for r in results].index(True) == 19 and results[-1][4]["success"] is False
    assert sum(r[1] for r in results) == -20.0


def test_ontologies_tell_every_item_apart():
    from turngym.envs.games.guess_my_city import city_bank
    from turngym.envs.games.twenty_questions import ontology_bank

    for bank, least in ((ontology_bank(), 100), (city_bank(), 100)):
        assert len(bank.items) >= least
        rows = {tuple(m >> i & 1 for m in bank.questions.values()) for i in range(len(bank.items))}
        assert len(rows) == len(bank.items)
    assert len(ontology_bank().questions) >= 15


def test_terse_guess_number_is_the_same_game_in_fewer_words():
    """``terse=True`` (for task models trained from scratch) changes the wording only: the same secret
    for a seed, the same rewards, one-word hints the expert still reads."""
    from turngym.envs.games.guess_number import expert

    terse = turngym.make("turngym/GuessNumber-v0", low=1, high=16, terse=True, max_turns=6)
    plain = turngym.make("turngym/GuessNumber-v0", low=1, high=16, max_turns=6)
    for seed in range(20):
        obs, _ = terse.reset(seed=seed)
        plain.reset(seed=seed)
        assert obs.last_text == "Guess 1-16." and terse.unwrapped.secret == plain.unwrapped.secret
        policy, texts = expert(terse.unwrapped), []
        done = False
        while not done:
            obs, reward, terminated, truncated, info = terse.step(policy(obs))
            texts.append(obs.last_text)
            done = terminated or truncated
        assert terminated and reward == 1.0 and info["success"]
        assert texts[-1] == "right" and set(texts[:-1]) <= {"higher", "lower"}
