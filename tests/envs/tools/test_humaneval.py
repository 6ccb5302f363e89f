"""HumanEvalMT-v0 for real: every canonical solution passes its tests in the sandbox (all 164, run
concurrently through the pool), and a wrong submission gets the test output and a retry."""

from __future__ import annotations

import pytest

from turngym.agents.base import make_agent
from turngym.agents.runner import EpisodeTask, run_episodes
from turngym.envs.tools.humaneval import problems

pytestmark = pytest.mark.docker
ENV = "turngym/HumanEvalMT-v0"


async def test_canonical_solutions_pass_every_problem():
    ids = list(problems())
    assert len(ids) == 164
    jobs = [EpisodeTask(env_id=ENV, seed=i, episode_id=tid) for i, tid in enumerate(ids)]
    jobs.append(EpisodeTask(env_id=ENV, env_kwargs={"action_format": "native"}, seed=5, episode_id="native"))
    episodes = await run_episodes(jobs, make_agent("scripted"), concurrency=8)
    failed = {e.episode_id: (e.error, [t.observation[-1].text[-300:] for t in e.turns]) for e in episodes if not e.success}
    assert not failed


async def test_wrong_code_gets_feedback_and_a_retry():
    from turngym.core.registry import make

    env = make(ENV, task_id="HumanEval/0")
    try:
        obs, info = await env.areset(seed=0)
        assert "has_close_elements" in obs.last_text and info["problem"] == "HumanEval/0"
        wrong = "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```"
        obs, reward, terminated, truncated, info = await env.astep(wrong)
        assert reward == 0.0 and not terminated and "AssertionError" in obs.last_text
        p = problems()["HumanEval/0"]
        obs, reward, terminated, truncated, info = await env.astep(f"<python>{p['canonical_solution']}</python>")
        assert reward == 1.0 and terminated and info["success"] and info["attempts"] == 2  # a body alone is fine
    finally:
        await env.aclose()


async def test_endless_submission_is_killed_at_the_test_timeout():
    from turngym.core.registry import make

    env = make(ENV, task_id="HumanEval/2", test_timeout=2)
    try:
        await env.areset()
        obs, reward, terminated, _, _ = await env.astep("```python\ndef truncate_number(x):\n    while True: pass\n```")
        assert "timed out" in obs.last_text and reward == 0.0 and not terminated
    finally:
        await env.aclose()
