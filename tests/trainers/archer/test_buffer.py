"""The turn replay buffer: transitions from Episodes, ring wrap, seeded sampling, save/restore."""

from __future__ import annotations

import json

import pytest
import torch

from turngym.benchmarks.store import read_episodes
from turngym.core.types import Episode, ImagePart, Message, TextPart, ToolCall, Turn, user
from turngym.trainers.archer.buffer import (
    ReplayBuffer,
    Transition,
    collate,
    episode_transitions,
    history_text,
)


def _episode(eid: str = "e0", *, terminated: bool = True, tokens: bool = False) -> Episode:
    """3 turns: prompt P; a1 -> o1 (r=0); a2 -> o2 (r=-1, a tool call); a3 -> o3 (r=1, terminated)."""
    ep = Episode(
        episode_id=eid,
        env_id="test/Fake-v0",
        prompt=[Message(role="system", content="rules"), user(f"start {eid}")],
        turns=[
            Turn(index=0, action="[50]", observation=[user("higher")], reward=0.0),
            Turn(
                index=1,
                action="",
                tool_calls=[ToolCall(id="c1", name="probe", arguments={"x": 75})],
                observation=[Message(role="tool", content="lower", tool_call_id="c1")],
                reward=-1.0,
            ),
            Turn(
                index=2,
                action="[60]",
                observation=[user("right!")],
                reward=1.0,
                terminated=terminated,
                truncated=not terminated,
            ),
        ],
    )
    if tokens:
        # stream: prompt 0..4 | a1 5..7 | o1 7..9 | gen-prompt 9 | a2 10..12 | o2 12..14 | a3 14..16 | o3 16..18
        ep.tokens = list(range(100, 118))
        spans = [((5, 7), (7, 9)), ((10, 12), (12, 14)), ((14, 16), (16, 18))]
        for turn, (a, o) in zip(ep.turns, spans, strict=True):
            turn.action_span, turn.observation_span = a, o
    return ep


def _t(i: int) -> Transition:
    return Transition(
        history=(user(f"s{i}"), Message(role="assistant", content=f"a{i}")),
        state_end=1,
        next_state_end=2,
        action=f"a{i}",
        reward=float(i),
        done=False,
    )


def test_episode_gives_one_expected_transition_per_turn():
    ep = _episode()
    ts = episode_transitions(ep)
    assert len(ts) == 3
    p = list(ep.prompt)
    said = [
        Message(role="assistant", content="[50]"),
        Message(role="assistant", content="", tool_calls=ep.turns[1].tool_calls),
        Message(role="assistant", content="[60]"),
    ]
    s1 = (*p,)
    s2 = (*s1, said[0], *ep.turns[0].observation)
    s3 = (*s2, said[1], *ep.turns[1].observation)
    s4 = (*s3, said[2], *ep.turns[2].observation)
    assert [(t.state, t.action, t.reward, t.next_state, t.done) for t in ts] == [
        (s1, "[50]", 0.0, s2, False),
        (s2, '[{"name": "probe", "arguments": {"x": 75}}]', -1.0, s3, False),
        (s3, "[60]", 1.0, s4, True),
    ]
    assert [(t.episode_id, t.turn) for t in ts] == [("e0", 0), ("e0", 1), ("e0", 2)]
    # s' of a turn is s of the next; the text form is what the encoder reads
    assert ts[0].next_state == ts[1].state
    assert ts[0].state_text == "system: rules\nuser: start e0"
    assert ts[0].next_state_text == "system: rules\nuser: start e0\nassistant: [50]\nuser: higher"
    # the turns share the episode's message objects (no copy of the history per turn)
    assert ts[2].state[0] is ep.prompt[0] and ts[2].state[3] is ep.turns[0].observation[0]
    assert ts[0].history is ts[2].history and ts[2].next_state == ts[2].history
    assert all(t.state_ids is None and t.tokens is None for t in ts)  # a scripted agent records no tokens


def test_truncated_episode_bootstraps_its_last_turn():
    ts = episode_transitions(_episode(terminated=False))
    assert [t.done for t in ts] == [False, False, False]


def test_token_ids_point_into_the_episode_stream():
    ep = _episode(tokens=True)
    ts = episode_transitions(ep)
    base = 100
    assert ts[0].state_ids == [base + i for i in range(5)]
    assert ts[0].action_ids == [105, 106]
    assert ts[0].next_state_ids == [base + i for i in range(10)]  # s'_1 = the context of turn 2 (incl. gen prompt)
    assert ts[1].state_ids == ts[0].next_state_ids
    assert ts[2].action_ids == [114, 115]
    assert ts[2].next_state_ids == [base + i for i in range(18)]  # the last turn ends at its observation
    assert ts[0].tokens is ts[2].tokens  # one stream shared by the episode's transitions
    bad = _episode(tokens=True)
    bad.turns[2].action_span = (14, 30)
    with pytest.raises(ValueError, match="turn 2.*do not fit its token stream of 18"):
        episode_transitions(bad)


def test_history_text_renders_tool_calls_and_skips_images():
    msgs = [
        Message(role="user", content=[TextPart(text="look"), ImagePart(url="data:image/png;base64,AAAA")]),
        Message(role="assistant", content="ok", tool_calls=[ToolCall(name="f", arguments={"a": 1})]),
    ]
    assert history_text(msgs) == 'user: look\nassistant: ok\n[{"name": "f", "arguments": {"a": 1}}]'


def test_capacity_wrap_overwrites_the_oldest():
    buf = ReplayBuffer(capacity=3, seed=0)
    buf.extend(_t(i) for i in range(2))
    assert (len(buf), buf.position, buf.added) == (2, 2, 2)
    assert [t.reward for t in buf.transitions()] == [0.0, 1.0]
    buf.extend(_t(i) for i in range(2, 5))
    assert (len(buf), buf.position, buf.added) == (3, 2, 5)
    assert [t.reward for t in buf.transitions()] == [2.0, 3.0, 4.0]
    assert {t.reward for t in buf.sample(200)} == {2.0, 3.0, 4.0}  # never an overwritten one
    with pytest.raises(ValueError, match="capacity=0"):
        ReplayBuffer(capacity=0)


def test_seeded_sampling_is_deterministic():
    def filled(seed: int) -> ReplayBuffer:
        b = ReplayBuffer(capacity=100, seed=seed)
        b.extend(_t(i) for i in range(50))
        return b

    a, b, c = filled(7), filled(7), filled(8)
    draws_a = [[t.reward for t in a.sample(16)] for _ in range(3)]
    assert draws_a == [[t.reward for t in b.sample(16)] for _ in range(3)]
    assert draws_a != [[t.reward for t in c.sample(16)] for _ in range(3)]
    assert len(set(sum(draws_a, []))) > 16  # uniform over the 50, not a fixed subset
    with pytest.raises(ValueError, match="empty replay buffer"):
        ReplayBuffer().sample(1)


def test_save_restore_round_trip_continues_exactly(tmp_path):
    buf = ReplayBuffer(capacity=8, seed=3)
    buf.add_episodes([_episode("e0", tokens=True), _episode("e1"), _episode("e2", terminated=False)])
    assert (len(buf), buf.position, buf.added) == (8, 1, 9)  # 9 turns into 8 slots: wrapped once
    buf.sample(5)  # advance the generator before saving
    path = buf.save(tmp_path / "run" / "replay.jsonl")
    restored = ReplayBuffer.load(path)

    assert (len(restored), restored.position, restored.added, restored.capacity) == (8, 1, 9, 8)
    assert restored.transitions() == buf.transitions()
    for _ in range(3):  # the same subsequent samples
        assert restored.sample(6) == buf.sample(6)
    # and the same ring afterwards
    for b in (buf, restored):
        b.add_episodes([_episode("e3")])
    assert restored.transitions() == buf.transitions() and restored.position == buf.position == 4
    assert restored.sample(10) == buf.sample(10)
    # each episode (its history and token stream) is written once, in the episode store format, and its
    # history and stream are shared again after loading
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0]["episodes"] == "replay.episodes.jsonl" and len(lines) == 1 + 8  # the header, one line per slot
    stored = read_episodes(path.with_name("replay.episodes.jsonl"))
    assert [e.episode_id for e in stored] == ["e0", "e1", "e2"]  # e0 (2 turns left after the wrap), e1, e2
    assert sum(bool(e.tokens) for e in stored) == 1  # only e0 has a token stream
    r = restored.transitions()
    assert r[0].history is r[1].history and r[0].tokens is r[1].tokens
    assert not (tmp_path / "run" / "replay.jsonl.tmp").exists()


def test_save_refers_to_the_runs_episode_store_and_load_rebuilds_from_it(tmp_path):
    """Where the run's store holds the episodes, the checkpoint holds only references into it (relative, so
    the run directory can move); an episode the store lacks is named."""
    from turngym.benchmarks.store import EpisodeStore

    episodes = [_episode("e0", tokens=True), _episode("e1"), _episode("e2", terminated=False)]
    store = tmp_path / "run" / "episodes.jsonl"
    with EpisodeStore(path=store) as s:
        s.extend(episodes)
    buf = ReplayBuffer(capacity=8, seed=3)
    buf.add_episodes(episodes)
    buf.sample(3)
    path = buf.save(tmp_path / "run" / "checkpoints" / "iter-000001" / "replay.jsonl", store=store)
    assert json.loads(path.read_text().splitlines()[0])["episodes"] == "../../episodes.jsonl"
    assert not path.with_name("replay.episodes.jsonl").exists()
    (tmp_path / "run").rename(tmp_path / "moved")
    restored = ReplayBuffer.load(tmp_path / "moved" / "checkpoints" / "iter-000001" / "replay.jsonl")
    assert restored.transitions() == buf.transitions() and restored.sample(6) == buf.sample(6)
    (tmp_path / "moved" / "episodes.jsonl").write_text("")
    with pytest.raises(ValueError, match="does not hold"):
        ReplayBuffer.load(tmp_path / "moved" / "checkpoints" / "iter-000001" / "replay.jsonl")


def test_load_rejects_a_foreign_or_truncated_file(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"format": "something-else"}\n')
    with pytest.raises(ValueError, match="not a turngym ArCHer replay buffer"):
        ReplayBuffer.load(p)
    buf = ReplayBuffer(capacity=4)
    buf.add_episodes([_episode()])
    buf.save(p)
    lines = p.read_text().splitlines()
    p.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match="holds 2 transitions but its header says 3"):
        ReplayBuffer.load(p)


def test_collate_gives_texts_and_tensors():
    ts = episode_transitions(_episode())
    batch = collate(ts)
    assert batch.actions[0] == "[50]" and batch.states[1] == ts[1].state_text
    assert torch.equal(batch.rewards, torch.tensor([0.0, -1.0, 1.0]))
    assert torch.equal(batch.dones, torch.tensor([0.0, 0.0, 1.0]))
    assert batch.next_states[2].endswith("user: right!")


async def test_buffer_from_real_guess_number_episodes():
    """Episodes recorded by the rollout runner on the reference env fill the buffer turn by turn."""
    from turngym.agents.base import make_agent
    from turngym.agents.runner import group_tasks, run_episodes

    tasks = group_tasks("turngym/GuessNumber-v0", seeds=range(3), group_size=2)
    agent = make_agent("random", seed=0)
    try:
        episodes = await run_episodes(tasks, agent, concurrency=2, run_id="archer-buffer-test")
    finally:
        await agent.aclose()
    buf = ReplayBuffer(capacity=10_000, seed=0)
    n = buf.add_episodes(episodes)
    assert n == sum(ep.num_turns for ep in episodes) == len(buf) > len(episodes)
    by_episode: dict[str, list[Transition]] = {}
    for t in buf.transitions():
        by_episode.setdefault(t.episode_id, []).append(t)
    for ep in episodes:
        ts = by_episode[ep.episode_id]
        assert ts[0].state == tuple(ep.prompt)
        assert all(x.next_state == y.state for x, y in zip(ts, ts[1:], strict=False))
        assert [t.reward for t in ts] == [turn.reward for turn in ep.turns]
        assert [t.done for t in ts] == [False] * (len(ts) - 1) + [ep.turns[-1].terminated]
