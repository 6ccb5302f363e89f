"""Tree rollouts (turngym.agents.runner.branch_tasks): a branch restores its parent's env snapshot and continues
its conversation without sampling the prefix again."""

from __future__ import annotations

import asyncio

import pytest

from tests.agents.conftest import tiny_model
from turngym.agents.hf import HFBackend
from turngym.agents.llm import LLMAgent
from turngym.agents.runner import branch_tasks, group_tasks, run_episodes
from turngym.agents.sampling import SamplingConfig
from turngym.agents.scripted import RandomAgent, ScriptedAgent
from turngym.benchmarks.store import EpisodeStore, read_episodes
from turngym.trainers.table import TurnTable

GN = {"low": 1, "high": 16, "terse": True}


def roots(env_id: str, seeds: list[int], *, group_size: int = 1, **kwargs):
    tasks = group_tasks(env_id, seeds, group_size=group_size, **kwargs)
    return [t.model_copy(update={"branch_points": True}) for t in tasks]


@pytest.fixture(scope="module")
def gn_agent():
    path = tiny_model("gn-nano", size="nano", tokenizer="task:guess_number", init_std=0.02)
    backend = HFBackend(model=str(path))
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=6, constrain=True, seed=1)
    agent = LLMAgent(backend=backend, sampling=sampling, system_prompt="")
    yield agent
    asyncio.run(agent.aclose())


def test_a_branch_shares_its_parents_prefix_tokens_and_samples_only_its_own(gn_agent):
    async def play():
        [parent] = await run_episodes(roots("turngym/GuessNumber-v0", [5], env_kwargs=GN, max_turns=6), gn_agent)
        assert parent.error is None and len(parent.turns) >= 3, parent.error
        before = gn_agent.backend.stats["generated"]
        branches = await run_episodes(branch_tasks(parent, 2, 3), gn_agent)
        return parent, branches, gn_agent.backend.stats["generated"] - before

    parent, branches, generated = asyncio.run(play())
    assert [b.error for b in branches] == [None] * 3
    prefix = parent.turns[2].action_span[0]  # the stream up to turn 2's action: prompt, 2 replies, 2 hints
    # the backend sampled exactly the branches' own replies: the prefix's replies were copied, not sampled again
    own = sum(sum(b.mask) for b in branches)
    assert generated == own > 0
    for j, b in enumerate(branches):
        assert b.episode_id == f"{parent.episode_id}/b2.{j}" and b.group_id == parent.group_id
        assert (b.parent_id, b.branch_turn, b.instance_hash) == (parent.episode_id, 2, parent.instance_hash)
        assert b.tokens[:prefix] == parent.tokens[:prefix]
        assert b.logprobs[:prefix] == parent.logprobs[:prefix]
        assert set(b.mask[:prefix]) == {0}  # the copied replies carry no loss in the branch
        assert [t.action for t in b.turns[:2]] == [t.action for t in parent.turns[:2]]
        assert [t.observation for t in b.turns[:2]] == [t.observation for t in parent.turns[:2]]
        # turn 2 on was played against the restored env: the hints answer the same secret
        secret_hint = {t.action: t.observation[0].text for t in parent.turns}
        for turn in b.turns[2:]:
            if turn.action in secret_hint:
                assert turn.observation[0].text == secret_hint[turn.action]
        for i, turn in enumerate(b.turns):
            assert turn.index == i and turn.action_span is not None
            s, e = turn.action_span
            assert b.mask[s:e] == ([0] * (e - s) if i < 2 else [1] * (e - s))
    # the continuations differ from each other: sampled with request seeds of their own
    assert len({tuple(t.action for t in b.turns[2:]) for b in branches}) > 1


def test_a_branch_continues_the_restored_env_and_diverges(tmp_path):
    env_id, kw = "turngym/Maze-v0", {"max_turns": 12}
    [parent] = asyncio.run(run_episodes(roots(env_id, [3], **kw), RandomAgent(seed=0)))
    assert len(parent.turns) == 12
    branches = asyncio.run(run_episodes(branch_tasks(parent, 5, 4), RandomAgent(seed=0)))
    for b in branches:
        assert b.error is None
        assert [t.model_dump() for t in b.turns[:5]] == [t.model_dump() for t in parent.turns[:5]]
        # the parent's turn limit (12, not Maze's registered 50) and its count, restored: 7 more moves, not 12
        assert len(b.turns) == 12 and b.truncated
    # a random continuation diverges from the parent's (4 branches, 7 moves each)
    assert any([t.action for t in b.turns[5:]] != [t.action for t in parent.turns[5:]] for b in branches)
    # the tree is stored: parent and branch turn survive the episode store and the turn table
    store = EpisodeStore(path=tmp_path / "episodes.jsonl")
    for episode in (parent, *branches):
        store.append(episode)
    store.close()
    back = read_episodes(tmp_path / "episodes.jsonl")
    assert [(e.parent_id, e.branch_turn) for e in back] == [("", None)] + [(parent.episode_id, 5)] * 4
    table = TurnTable.from_episodes(back)
    assert table.branch_turn.tolist() == [-1, 5, 5, 5, 5]
    assert table.parent_id.tolist() == ["", *[parent.episode_id] * 4]


def test_branching_errors_name_the_cause():
    [plain] = asyncio.run(run_episodes(group_tasks("turngym/Maze-v0", [3]), RandomAgent(seed=0)))
    with pytest.raises(ValueError, match="recorded no branch points: play it with EpisodeTask"):
        branch_tasks(plain, 0, 2)
    [parent] = asyncio.run(run_episodes(roots("turngym/Maze-v0", [3], max_turns=4), RandomAgent(seed=0)))
    with pytest.raises(ValueError, match=r"at turn 4: it has branch points for turns 0..3"):
        branch_tasks(parent, 4, 2)
    # an agent that keeps no branchable state: the branch episode records the reason, the run goes on
    [branch] = asyncio.run(run_episodes(branch_tasks(parent, 1, 1), ScriptedAgent()))
    assert branch.error.startswith("NotImplementedError: the scripted agent cannot continue an episode")
    assert "(in agent start)" in branch.error
