"""Tasks with turn rewards: Lookup (MT-GRPO's two-turn search-then-answer task) and TextNav's sub-goal
rewards. Each reward is checked against values worked out by hand; Maze's shaped reward is in test_games.py."""

from __future__ import annotations

import pytest

import turngym
from turngym.envs.games import lookup, text_nav

LOOKUP = "turngym/Lookup-v0"
TEXTNAV = "turngym/TextNav-v0"


def _play_expert(env, expert, seed: int) -> tuple[list[str], list[float], dict]:
    """The expert's actions and per-step rewards on ``seed``, and the final info."""
    obs, _ = env.reset(seed=seed)
    policy, actions, rewards = expert(env.unwrapped), [], []
    while True:
        actions.append(policy(obs))
        obs, reward, terminated, truncated, info = env.step(actions[-1])
        rewards.append(float(reward))
        if terminated or truncated:
            return actions, rewards, info


def _other(table: dict[str, str], person: str) -> str:
    return next(name for name in table if name != person)


# -- Lookup ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("reward", "paid"), [("turn", [0.5, 1.0]), ("outcome", [0.0, 1.0])])
def test_lookup_expert_searches_then_answers(reward, paid):
    env = turngym.make(LOOKUP, reward=reward)
    for seed in range(30):
        actions, rewards, info = _play_expert(env, lookup.expert, seed)
        game = env.unwrapped
        assert actions == [f"[search {game.person}]", f"[answer {game.answer}]"]
        assert rewards == paid and info["success"] is True


def test_lookup_the_default_is_the_turn_reward_and_two_turns():
    env = turngym.make(LOOKUP)
    assert env.unwrapped.reward == "turn" and turngym.env_info(LOOKUP).max_turns == 2
    env.reset(seed=3)
    table, person = env.unwrapped.table, env.unwrapped.person
    for _ in range(2):  # two searches use up the two turns: truncated, no answer, no success
        _, reward, terminated, truncated, info = env.step(f"[search {_other(table, person)}]")
    assert (reward, terminated, truncated, info["success"]) == (0.0, False, True, False)


def test_lookup_search_rewards_one_each_way():
    env = turngym.make(LOOKUP, max_turns=None)
    obs, _ = env.reset(seed=5)
    game = env.unwrapped
    assert obs.last_text == f"Where does {game.person} live? Use [search NAME], then [answer CITY]."
    other = _other(game.table, game.person)
    absent = next(name for name in lookup.NAMES if name not in game.table)
    obs, reward, *_ = env.step(f"[search {other}]")  # another person's record: it does not hold the answer
    assert obs.last_text == f"{other} lives in {game.table[other]}." and reward == 0.0
    obs, reward, *_ = env.step(f"[search {absent.lower()}]")  # names are matched case-insensitively
    assert obs.last_text == f"No record of {absent}." and reward == 0.0
    obs, reward, terminated, *_ = env.step(f"I look it up: [search {game.person}]")
    assert obs.last_text == f"{game.person} lives in {game.answer}." and reward == 0.5 and not terminated


def test_lookup_answer_rewards_one_each_way():
    env = turngym.make(LOOKUP)
    env.reset(seed=2)
    game = env.unwrapped
    wrong = next(city for city in lookup.CITIES if city != game.answer)
    obs, reward, terminated, _, info = env.step(f"[answer {wrong}]")
    assert (obs.last_text, reward, terminated, info["success"]) == ("Wrong.", 0.0, True, False)
    env.reset(seed=2)
    env.step(f"[search {game.person}]")
    obs, reward, terminated, _, info = env.step(f"[answer {wrong}]")  # the search paid 0.5, the answer nothing
    assert (reward, terminated, info["success"]) == (0.0, True, False)
    env.reset(seed=2)  # answering at turn 1 without searching: a lucky guess is an exact match
    obs, reward, terminated, _, info = env.step(f"[answer {game.answer.upper()}]")
    assert (obs.last_text, reward, terminated, info["success"]) == ("Right.", 1.0, True, True)


def test_lookup_search_reward_is_paid_once():
    env = turngym.make(LOOKUP, max_turns=None)
    env.reset(seed=0)
    person = env.unwrapped.person
    assert [env.step(f"[search {person}]")[1] for _ in range(4)] == [0.5, 0.0, 0.0, 0.0]
    assert env.step(f"[answer {env.unwrapped.answer}]")[1] == 1.0
    env.reset(seed=0)  # a new episode pays again
    assert env.step(f"[search {person}]")[1] == 0.5


def test_lookup_invalid_actions_use_a_turn_and_pay_nothing():
    env = turngym.make(LOOKUP)
    for reply in ("Oslo", "[search Oslo]", "[answer Ann]", "[lookup Ann]"):
        env.reset(seed=1)
        obs, reward, terminated, truncated, info = env.step(reply)
        assert info["action_error"] and "Invalid action" in obs.last_text and reward == 0.0, reply
        assert not (terminated or truncated), reply
        assert "[answer CITY], CITY one of Paris, " in info["action_error"]  # the fix names both actions' words
    assert info["action_error"].startswith("[lookup Ann] is not a valid action")
    _, reward, terminated, truncated, info = env.step(f"[search {env.unwrapped.person}]")
    assert reward == 0.5 and truncated and info["success"] is False  # turn 2 of 2 was the search


def test_lookup_seeds_are_honoured():
    a, b = turngym.make(LOOKUP), turngym.make(LOOKUP, reward="outcome")
    instances = set()
    for seed in range(20):
        hash_a, hash_b = a.reset(seed=seed)[1]["instance_hash"], b.reset(seed=seed)[1]["instance_hash"]
        game = a.unwrapped
        # the same seed, the same table and question (whatever the reward scheme)
        assert hash_a == hash_b and (game.table, game.person) == (b.unwrapped.table, b.unwrapped.person)
        assert len(game.table) == 4 and len(set(game.table.values())) == 4 and game.answer == game.table[game.person]
        instances.add((tuple(game.table.items()), game.person))
    assert len(instances) == 20  # different seeds, different instances
    full = turngym.make(LOOKUP, n_people=12).unwrapped
    full.reset(seed=0)
    assert sorted(full.table) == sorted(lookup.NAMES)


def test_lookup_bad_options_name_the_value():
    with pytest.raises(ValueError, match="reward='dense'.*'turn'.*'outcome'"):
        turngym.make(LOOKUP, reward="dense")
    for n in (0, 13):
        with pytest.raises(ValueError, match=f"n_people={n} .*1..12"):
            turngym.make(LOOKUP, n_people=n)


def test_lookup_snapshot_keeps_the_paid_search():
    env, fresh = turngym.make(LOOKUP, max_turns=3), turngym.make(LOOKUP, max_turns=3)
    env.reset(seed=4)
    person, answer = env.unwrapped.person, env.unwrapped.answer
    assert env.step(f"[search {person}]")[1] == 0.5
    fresh.restore(env.snapshot())
    assert fresh.step(f"[search {person}]")[1] == 0.0  # already paid in the snapshot's episode
    _, reward, terminated, _, info = fresh.step(f"[answer {answer}]")
    assert (reward, terminated, info["success"]) == (1.0, True, True)


def test_lookup_task_vocabulary_covers_the_episodes(tmp_path):
    from transformers import AutoTokenizer

    from turngym.agents.tiny import build_tiny_model

    model = build_tiny_model(tmp_path, size="nano", tokenizer="task:lookup", template="compact")
    tok = AutoTokenizer.from_pretrained(model)
    env = turngym.make(LOOKUP)
    for seed in range(12):
        obs, _ = env.reset(seed=seed)
        messages = [{"role": "user", "content": obs.last_text}]
        wrong = next(c for c in lookup.CITIES if c != env.unwrapped.answer)
        for action in (f"[search {lookup.NAMES[seed]}]", f"[answer {wrong}]"):
            obs, *_ = env.step(action)
            messages += [{"role": "assistant", "content": action}, {"role": "user", "content": obs.last_text}]
        ids = tok.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
        assert tok.unk_token_id not in ids, tok.convert_ids_to_tokens(ids)
        assert tok.decode(ids) == tok.apply_chat_template(messages, tokenize=False)
    action = tok("[search Hana]", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(action) == ["[", "search", " Hana", "]"]  # one token a word


def test_lookup_example_train_config_validates():
    from importlib.resources import files

    from turngym.trainers.train import train_config

    cfg = train_config(files("turngym.trainers") / "configs" / "examples" / "tasks" / "lookup_mt_grpo.yaml")
    assert cfg.env.id == LOOKUP and cfg.env.max_turns == 2 and cfg.algorithm_name == "mt_grpo"
    assert turngym.make(cfg.env.id, **cfg.env.kwargs).unwrapped.reward == "turn"


# -- TextNav sub-goals ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_textnav_expert_return_with_subgoals(seed):
    sparse = _play_expert(turngym.make(TEXTNAV), text_nav.expert, seed)
    env = turngym.make(TEXTNAV, reward="subgoals")
    actions, rewards, info = _play_expert(env, text_nav.expert, seed)
    assert actions == sparse[0] and sparse[1] == [0.0] * (len(actions) - 1) + [1.0]  # the same episode
    assert info["success"] is True and sum(rewards) == 1.75 and rewards[-1] == 1.0
    obj, box = env.unwrapped.goal
    paid = [(actions[i], r) for i, r in enumerate(rewards[:-1]) if r]
    assert [r for _, r in paid] == [0.25] * 3 and paid[0][0] == f"[take {obj}]" and paid[2][0] == f"[open {box}]"
    assert env.unwrapped.reached == ["take", "carry", "open"]  # the expert takes, carries in, then opens


def test_textnav_subgoal_rewards_one_each_way():
    env = turngym.make(TEXTNAV, reward="subgoals", max_turns=None)
    obs, _ = env.reset(seed=5)
    nav = env.unwrapped
    obj, box = nav.goal
    goal_room = nav.furniture[box][0]
    policy = text_nav.expert(nav)
    while (action := policy(obs)) != f"[take {obj}]":  # to the object (opening its own container pays nothing)
        obs, reward, *_ = env.step(action)
        assert reward == 0.0, action
    assert env.step(action)[1] == 0.25 and nav.reached == ["take"]
    *way, last = nav.path(goal_room)
    assert [env.step(f"[go {d}]")[1] for d in way] == [0.0] * len(way)
    assert env.step(f"[go {last}]")[1] == 0.25 and nav.reached == ["take", "carry"]
    out = next(iter(nav.doors[goal_room]))
    assert env.step(f"[go {out}]")[1] == 0.0  # leaving the goal room takes nothing back...
    assert env.step(f"[go {nav.path(goal_room)[0]}]")[1] == 0.0  # ...and coming back pays nothing more
    assert env.step(f"[open {box}]")[1] == 0.25 and nav.reached == ["take", "carry", "open"]
    assert env.step(f"[close {box}]")[1] == 0.0 and env.step(f"[open {box}]")[1] == 0.0  # no farming
    obs, reward, terminated, _, info = env.step(f"[put {obj} in {box}]")
    assert (reward, terminated, info["success"]) == (1.0, True, True)


def test_textnav_opening_the_container_first_pays_it_first():
    env = turngym.make(TEXTNAV, reward="subgoals", max_turns=None)
    env.reset(seed=2)
    nav = env.unwrapped
    box = nav.goal[1]
    rewards = [float(env.step(f"[go {d}]")[1]) for d in nav.path(nav.furniture[box][0])]
    rewards.append(float(env.step(f"[open {box}]")[1]))
    assert rewards == [0.0] * (len(rewards) - 1) + [0.25] and nav.reached == ["open"]


def test_textnav_other_objects_and_containers_pay_nothing():
    env = turngym.make(TEXTNAV, reward="subgoals", max_turns=None)
    for seed in range(40):  # a seed that starts in a room with another (closed) container and a loose object
        env.reset(seed=seed)
        nav = env.unwrapped
        obj, box = nav.goal
        here = [n for n, (room, kind) in nav.furniture.items() if room == nav.room and kind == "container"]
        loose = [o for o in nav._visible() if o != obj]
        if here and here[0] != box and loose:
            break
    assert env.step(f"[open {here[0]}]")[1] == 0.0 and env.step(f"[take {loose[0]}]")[1] == 0.0
    assert nav.reached == []


def test_textnav_subgoals_survive_snapshot_and_restore():
    env = turngym.make(TEXTNAV, reward="subgoals", max_turns=None)
    fresh = turngym.make(TEXTNAV, reward="subgoals", max_turns=None)
    env.reset(seed=0)
    nav = env.unwrapped
    obj = nav.goal[0]
    policy, obs = text_nav.expert(nav), None
    while "take" not in nav.reached:
        obs, *_ = env.step(policy(obs))
    data = env.snapshot()
    fresh.restore(data)
    shelf = next(n for n, (room, kind) in nav.furniture.items() if room == nav.room and kind == "surface")
    for e in (env, fresh):  # put the object down and take it again: the take was paid before the snapshot
        assert e.step(f"[put {obj} on {shelf}]")[1] == 0.0 and e.step(f"[take {obj}]")[1] == 0.0
        assert e.unwrapped.reached == ["take"]


def test_textnav_default_is_sparse_and_bad_options_name_the_value():
    env = turngym.make(TEXTNAV)
    assert env.unwrapped.reward == "sparse"
    _, rewards, info = _play_expert(env, text_nav.expert, 1)
    assert rewards[-1] == 1.0 and sum(rewards) == 1.0 and info["success"] is True
    with pytest.raises(ValueError, match="reward='dense'.*'sparse'.*'subgoals'"):
        turngym.make(TEXTNAV, reward="dense")


MAZE_INVALID = ["[up down]", "up", "[left] [right"]
NAV_INVALID = ["[go north east]", "[take key]", "[put key on fridge]", "[open table]", "go west", "[close chest]"]


@pytest.mark.parametrize(
    "vocab, env_id, kwargs, invalid",
    [("maze", "turngym/Maze-v0", {"rows": 3, "cols": 3, "reward": "shaped"}, MAZE_INVALID),
     ("maze", "turngym/Maze-v0", {}, MAZE_INVALID),
     ("text_nav", "turngym/TextNav-v0", {"n_rooms": 2, "n_objects": 1, "reward": "subgoals"}, NAV_INVALID),
     ("text_nav", "turngym/TextNav-v0", {}, NAV_INVALID)],
)
def test_maze_and_text_nav_task_vocabularies_cover_random_episodes(tmp_path, vocab, env_id, kwargs, invalid):
    """perf/turn_credit.py trains tiny models on these tasks: every word of their prompts, observations and
    invalid-action messages is a token of the task's vocabulary (no <unk>)."""
    import asyncio

    from transformers import AutoTokenizer

    from turngym.agents.runner import group_tasks, run_episodes
    from turngym.agents.scripted import RandomAgent, ScriptedAgent
    from turngym.agents.tiny import build_tiny_model

    tok = AutoTokenizer.from_pretrained(build_tiny_model(tmp_path, size="nano", tokenizer=f"task:{vocab}",
                                                         template="compact"))
    texts = []
    for agent in (RandomAgent(seed=0), ScriptedAgent()):
        for ep in asyncio.run(run_episodes(group_tasks(env_id, range(8), env_kwargs=kwargs), agent)):
            texts += [m.text for m in ep.prompt] + [m.text for t in ep.turns for m in t.observation]
    env = turngym.make(env_id, **kwargs)
    for action in invalid:  # replies of the task's words that the env refuses: its messages are covered too
        env.reset(seed=0)
        obs, *_ = env.step(action)
        texts.append(obs.last_text)
    unknown = {t for t in texts if tok.unk_token_id in tok(t, add_special_tokens=False)["input_ids"]}
    assert not unknown, sorted(unknown)[:3]
