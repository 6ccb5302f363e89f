"""The turn table: views index the right spans without copying, collation pads and moves to a device,
Parquet round trips."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.trainers.builders import episode
from turngym.core.types import Episode
from turngym.trainers.table import TurnTable, collate_episodes, collate_turns, read_parquet, uncollate, write_parquet


@pytest.fixture
def table() -> TurnTable:
    # e0 stream (base 0):   [0 1 | 2 3 | 4 | 5 | 6]    prompt 0-1, a0 = 2-3, o0 = 4, a1 = 5, o1 = 6
    # e1 stream (base 100): [100 101 | 102 | 103]      prompt, a0 = 102, o0 = 103
    return TurnTable.from_episodes(
        [
            episode("e0", "g", [0.0, 1.0], action_lens=[2, 1], states=["hello", "warmer"], base=0),
            episode("e1", "g", [0.5], base=100, success=False),
        ]
    )


def test_columns(table):
    assert len(table) == 2 and table.num_turn_rows == 3
    assert table.num_turns.tolist() == [2, 1]
    assert table.turn_episode.tolist() == [0, 0, 1]
    assert table.turn_index.tolist() == [0, 1, 0]
    assert table.is_last_turn.tolist() == [False, True, True]
    assert table.returns.tolist() == [1.0, 0.5]
    assert table.outcome.tolist() == [1.0, 0.5]  # final reward
    assert np.isnan(table.success[0]) and table.success[1] == 0.0
    # the state of turn t is what the agent answered: the prompt, then the previous observation
    assert table.state_text.tolist() == ["hello", "warmer", "g state 0"]
    # loss tokens map to their turn rows
    assert table.token_turn.tolist() == [-1, -1, 0, 0, -1, 1, -1, -1, -1, 2, -1]


def test_views_are_slices_not_copies(table):
    tv = table.turn(1)  # e0 turn 1
    assert tv.episode == 0 and tv.index == 1 and tv.reward == 1.0
    assert tv.context.tolist() == [0, 1, 2, 3, 4]
    assert tv.action.tolist() == [5]
    assert tv.action_mask.tolist() == [1]
    assert tv.action_logprobs.tolist() == [-0.5]
    assert np.shares_memory(tv.context, table.tokens) and np.shares_memory(tv.action, table.tokens)
    tv = table.turn(2)  # e1 turn 0
    assert tv.context.tolist() == [100, 101] and tv.action.tolist() == [102]
    ev = table.episode(1)
    assert ev.tokens.tolist() == [100, 101, 102, 103] and ev.mask.tolist() == [0, 0, 1, 0]
    assert list(ev.turn_rows) == [2] and np.shares_memory(ev.tokens, table.tokens)


def test_collate_episodes_pads(table):
    adv = np.arange(len(table.tokens), dtype=np.float64) / 10
    b = collate_episodes(table, pad_id=-7, token_columns={"advantages": adv})
    assert b["input_ids"].tolist() == [[0, 1, 2, 3, 4, 5, 6], [100, 101, 102, 103, -7, -7, -7]]
    assert b["attention_mask"].tolist() == [[1] * 7, [1, 1, 1, 1, 0, 0, 0]]
    assert b["loss_mask"].tolist() == [
        [False, False, True, True, False, True, False],
        [False, False, True, False, False, False, False],
    ]
    assert b["turn_ids"].tolist() == [[-1, -1, 0, 0, -1, 1, -1], [-1, -1, 0, -1, -1, -1, -1]]
    assert b["old_logprobs"][1].tolist() == [0, 0, -0.5, 0, 0, 0, 0]
    assert b["advantages"].dtype == torch.float32
    assert b["advantages"][1].tolist() == pytest.approx([0.7, 0.8, 0.9, 1.0, 0, 0, 0])
    assert b["episode"].tolist() == [0, 1] and b["lengths"].tolist() == [7, 4]
    assert b["input_ids"].dtype == torch.long


def test_collate_rows_and_device(table):
    b = collate_episodes(table, [1], device="meta")  # any device: tensors are created there
    assert all(t.device.type == "meta" for t in b.values())
    assert b["input_ids"].shape == (1, 4)


def test_collate_turns(table):
    b = collate_turns(table, [0, 1, 2])
    # each row: the stream up to the end of the turn's action; loss only on that action
    assert b["input_ids"].tolist() == [[0, 1, 2, 3, 0, 0], [0, 1, 2, 3, 4, 5], [100, 101, 102, 0, 0, 0]]
    assert b["loss_mask"].int().tolist() == [[0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1], [0, 0, 1, 0, 0, 0]]
    assert b["turn_ids"].tolist() == [[-1, -1, 0, 0, -1, -1], [-1, -1, -1, -1, -1, 1], [-1, -1, 0, -1, -1, -1]]
    assert b["episode"].tolist() == [0, 0, 1] and b["turn_rows"].tolist() == [0, 1, 2]


def test_uncollate_inverts_collate(table):
    b = collate_episodes(table, [1, 0])
    flat = uncollate(table, [1, 0], b["input_ids"].float())
    assert flat.tolist() == table.tokens.astype(float).tolist()


def test_select(table):
    sub = table.select([1])
    assert sub.episode_id.tolist() == ["e1"] and sub.tokens.tolist() == [100, 101, 102, 103]
    assert sub.turn(0).action.tolist() == [102] and sub.reward.tolist() == [0.5]
    assert table.turn_rows_of([1, 0]).tolist() == [2, 0, 1]


def test_parquet_round_trip(table, tmp_path):
    write_parquet(table, tmp_path / "shard-00000.parquet")
    write_parquet([episode("e2", "h", [0.25, 0.0, 2.0], base=500)], tmp_path / "shard-00001.parquet")
    one = read_parquet(tmp_path / "shard-00000.parquet")
    for name in ("episode_id", "group_id", "instance_hash", "reward", "action_start", "obs_end", "state_text",
                 "tokens", "mask", "logprobs", "token_offsets", "turn_offsets", "outcome", "trainable"):  # fmt: skip
        assert getattr(one, name).tolist() == getattr(table, name).tolist(), name
    assert np.isnan(one.success[0]) and one.success[1] == 0.0
    both = read_parquet(tmp_path)  # a directory: every shard, in name order
    assert both.episode_id.tolist() == ["e0", "e1", "e2"]
    assert both.turn(3).context.tolist() == [500, 501]  # e2 turn 0, offsets shifted by the concat
    assert both.returns.tolist() == [1.0, 0.5, 2.25]
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_stream_is_rejected():
    ep = episode("bad", "g", [1.0])
    ep.turns[0].action_span = (2, 99)
    with pytest.raises(ValueError, match=r"action_span \(2, 99\) is outside its stream"):
        TurnTable.from_episodes([ep])


def test_check_groups_catches_mixed_instances():
    t = TurnTable.from_episodes([episode("a", "g", [1.0], instance_hash="h1"), episode("b", "g", [0.0], instance_hash="h2")])
    with pytest.raises(ValueError, match="mixes task instances"):
        t.check_groups()
    TurnTable.from_episodes([episode("a", "g", [1.0]), episode("b", "g", [0.0])]).check_groups()


def test_scripted_episodes_without_streams():
    from turngym.core.types import Episode, Turn, user

    turns = [Turn(index=0, action="[3]", reward=1.0)]
    ep = Episode(episode_id="s", group_id="g", env_id="x", prompt=[user("hi")], turns=turns)
    t = TurnTable.from_episodes([ep])
    assert t.num_turn_rows == 1 and len(t.tokens) == 0 and t.action_start.tolist() == [-1]
    with pytest.raises(ValueError, match="no action span"):
        t.turn(0)


async def test_table_of_real_rollouts():
    """Episodes of the real runner (GuessNumber, random agent, groups of 4 per seed) go into the table,
    share an instance per group, and every estimator runs on them."""
    from turngym.agents.base import make_agent
    from turngym.agents.runner import group_tasks, run_episodes
    from turngym.trainers.advantages import ESTIMATORS, NEEDS_VALUES

    tasks = group_tasks("turngym/GuessNumber-v0", seeds=[1, 2], group_size=4, env_kwargs={"low": 1, "high": 8}, max_turns=3)
    episodes = await run_episodes(tasks, make_agent("random"), concurrency=2)
    table = TurnTable.from_episodes(episodes)
    table.check_groups()
    assert len(table) == 8 and table.group_index().tolist() == [0] * 4 + [1] * 4
    assert table.num_turns.min() >= 1 and table.num_turns.max() <= 3
    assert table.returns.tolist() == [ep.total_return for ep in episodes]
    # the first state of every episode of a group is the same prompt: one GiGPO anchor per group
    firsts = table.state_text[table.turn_offsets[:-1]]
    assert len(set(firsts[:4].tolist())) == 1
    for name, (fn, cfg) in ESTIMATORS.items():
        if name not in NEEDS_VALUES:
            adv = fn(table, cfg())
            assert adv.turn.shape == (table.num_turn_rows,) and np.all(np.isfinite(adv.turn)), name


def _ended(eid: str, how: str, base: int) -> Episode:
    """A 2-turn episode that ends ``terminated``, ``truncated`` (a time limit) or ``cut`` (an error: neither)."""
    ep = episode(eid, "g", [0.0, 1.0], base=base, success=how == "terminated")
    last = ep.turns[-1].model_copy(update={"terminated": how == "terminated", "truncated": how == "truncated"})
    return ep.model_copy(update={"turns": [ep.turns[0], last], "truncated": how == "truncated",
                                 "error": "boom" if how == "cut" else None, "run_id": "it1"})


def test_the_table_read_from_the_episode_store_is_the_table_of_the_episodes(tmp_path):
    """The run's storage is the episode store: its table equals the in-memory one, column by column,
    terminated and truncated kept apart (a time limit is not a terminal state); Parquet exports keep them too."""
    from turngym.benchmarks.store import EpisodeStore, read_episodes

    episodes = [_ended("e0", "terminated", 0), _ended("e1", "truncated", 100), _ended("e2", "cut", 200)]
    with EpisodeStore(path=tmp_path / "episodes.jsonl") as store:
        store.extend(episodes)
    want = TurnTable.from_episodes(episodes)
    got = TurnTable.from_episodes(read_episodes(tmp_path / "episodes.jsonl"))
    exported = read_parquet(write_parquet(got, tmp_path / "export.parquet"))
    for table in (got, exported):
        for f in dataclasses.fields(TurnTable):
            a, b = getattr(want, f.name), getattr(table, f.name)
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), f.name
    assert got.terminated.tolist() == [False, True, False, False, False, False]
    assert got.truncated.tolist() == [False, False, False, True, False, False]


def test_a_parquet_shard_of_the_earlier_layout_reads_with_its_assumption(table, tmp_path):
    """A shard written before the flags were kept: the last turn counts as terminal (what it assumed)."""
    import pyarrow.parquet as pq

    pq.write_table(table.to_arrow().drop(["terminated", "truncated"]), tmp_path / "old.parquet")
    old = read_parquet(tmp_path / "old.parquet")
    assert old.terminated.tolist() == table.is_last_turn.tolist() and not old.truncated.any()
