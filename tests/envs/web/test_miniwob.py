"""MiniWoB++ envs in the real Chromium: seeds fix instances, rewards come from the page, invalid
actions are observations, the final screenshot is there, and the scripted experts solve their tasks.

The expert test runs ``TURNGYM_MINIWOB_SEEDS`` seeds per task (5 by default, to fit the test budget);
the 50-seed figures of the task are made with the same test:
``TURNGYM_MINIWOB_SEEDS=50 .venv/bin/python -m pytest tests/envs/web/test_miniwob.py -k experts``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import defaultdict

import pytest

import turngym
from turngym.agents.base import make_agent
from turngym.agents.runner import EpisodeTask, run_episodes
from turngym.core.types import ImagePart
from turngym.envs.web.miniwob_experts import SOLVERS

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("browser_required")]

SEEDS = int(os.environ.get("TURNGYM_MINIWOB_SEEDS", "5"))


async def test_seed_fixes_the_instance_and_rewards_come_from_the_page():
    env = turngym.make("miniwob/click-button-v1", pool_size=1)
    try:
        goals, hashes = [], []
        for seed in (3, 3, 4):
            obs, info = await env.areset(seed=seed)
            goals.append(info["goal"])
            hashes.append(info["instance_hash"])
        assert goals[0] == goals[1] and hashes[0] == hashes[1] and hashes[0] != hashes[2]
        assert info["goal"] in obs.last_text and "click(id)" in obs.last_text

        # a wrong button: the page says -1 and the episode ends without success
        unwrapped = env.unwrapped
        target = info["goal"].split('"')[1]
        wrong = next(e for e in unwrapped.session.last.elements.values() if e.role == "button" and e.name != target)
        obs, reward, terminated, truncated, info = await env.astep(f"click({wrong.id})")
        assert (reward, terminated, info["success"], info["raw_reward"]) == (-1.0, True, False, -1.0)
        assert any(isinstance(p, ImagePart) and p.url.startswith("data:image/png;base64,") for p in obs.messages[-1].content)
    finally:
        await env.aclose()
        await env.aclose()


async def test_invalid_actions_are_observations_and_binary_reward():
    env = turngym.make("miniwob/enter-text-v1", pool_size=1, reward="binary", max_invalid_actions=3)
    try:
        obs, info = await env.areset(seed=1)
        obs, reward, term, trunc, info = await env.astep("click(4242)")
        assert "no element [4242]" in info["action_error"] and not term and "no element" in obs.last_text
        obs, reward, term, trunc, info = await env.astep("let me think")
        assert "no action" in info["action_error"]
        unwrapped = env.unwrapped
        box = next(e for e in unwrapped.session.last.elements.values() if e.role == "textbox")
        word = info.get("goal") or unwrapped.goal.split('"')[1]
        await env.astep(f'fill({box.id}, "{word}")')
        submit = next(e for e in unwrapped.session.last.elements.values() if e.role == "button")
        obs, reward, term, trunc, info = await env.astep(f"click({submit.id})")
        assert (reward, term, info["success"]) == (1.0, True, True)
    finally:
        await env.aclose()


async def test_screenshot_and_set_of_marks_observations():
    env = turngym.make("miniwob/click-checkboxes-v1", pool_size=1, screenshot=True, som=True)
    try:
        obs, _ = await env.areset(seed=0)
        images = obs.messages[-1].images
        assert len(images) == 2 and all(i.url.startswith("data:image/png;base64,") for i in images)
        assert images[0].url != images[1].url  # the marks are drawn on the second
    finally:
        await env.aclose()


async def test_navigating_away_ends_the_episode_with_a_clear_error():
    env = turngym.make("miniwob/click-test-v1", pool_size=1)
    try:
        await env.areset(seed=0)
        session = env.unwrapped.session
        await session.evaluate("() => { document.body.innerHTML += '<a href=\"about:blank\">leave</a>'; }")
        snap = await session.observe()
        link = next(e for e in snap.elements.values() if e.role == "link")
        obs, reward, term, trunc, info = await env.astep(f"click({link.id})")
        assert term and info["success"] is False and "navigated away" in info["error"]
        # the env recovers: the next reset starts a fresh page
        obs, info = await env.areset(seed=1)
        assert "Click Me" in obs.last_text
    finally:
        await env.aclose()


async def test_crashed_page_ends_the_episode_and_the_env_recovers():
    env = turngym.make("miniwob/click-test-v1", pool_size=1)
    try:
        await env.areset(seed=0)
        session = env.unwrapped.session
        cdp = await session.context.new_cdp_session(session.page)
        try:
            await asyncio.wait_for(cdp.send("Page.crash"), 2)
        except Exception:
            pass
        obs, reward, term, trunc, info = await env.astep("click(4)")
        assert trunc and info["success"] is False and "crash" in info["error"] and "crash" in obs.last_text
        obs, info = await env.areset(seed=2)
        obs, reward, term, trunc, info = await env.astep(
            f"click({next(e.id for e in env.unwrapped.session.last.elements.values() if e.role == 'button')})"
        )
        assert term and info["success"]
    finally:
        await env.aclose()


def test_sync_api_and_gymnasium_make():
    import gymnasium

    env = gymnasium.make("miniwob/click-test-2-v1", pool_size=1)
    obs, info = env.reset(seed=0)
    one = next(e for e in env.unwrapped.session.last.elements.values() if e.name == "ONE")
    obs, reward, term, trunc, info = env.step(f"click({one.id})")
    assert term and reward > 0
    env.close()
    env.close()


def test_sync_api_envs_share_one_chromium_that_is_relaunched_and_gone_after_close():
    import gymnasium

    from tests.conftest import chromium_of_this_process

    first = gymnasium.make("miniwob/click-test-v1", pool_size=1)
    second = gymnasium.make("miniwob/click-test-2-v1", pool_size=1)
    try:
        first.reset(seed=0)
        second.reset(seed=0)
        browser = first.unwrapped._sandbox
        assert browser is second.unwrapped._sandbox and len(browser.pids) == 1
        for pid in browser.pids:  # the browser dies: the next reset launches another, shared again
            os.kill(pid, signal.SIGKILL)
        _wait_until(lambda: not browser.connected)
        first.reset(seed=1)
        second.reset(seed=1)
        assert first.unwrapped._sandbox is second.unwrapped._sandbox and first.unwrapped._sandbox.connected
        first.close()
        assert second.unwrapped._sandbox.connected  # the other env still uses it
        second.step("click(1)")
    finally:
        first.close()
        second.close()
    _wait_until(lambda: not chromium_of_this_process())
    assert not chromium_of_this_process()


async def test_envs_of_one_task_share_one_pool_until_the_last_closes():
    one, two = (turngym.make("miniwob/click-test-v1", pool_size=1) for _ in range(2))
    other = turngym.make("miniwob/click-button-v1", pool_size=1)
    try:
        for env in (one, two, other):
            await env.areset(seed=0)
        pool = one.unwrapped._pool
        assert pool is two.unwrapped._pool and pool is not other.unwrapped._pool and pool.refs == 2
        await one.aclose()
        assert not pool.closed
        obs, _ = await two.areset(seed=1)  # the pool still serves the other env
        assert "Click Me" in obs.last_text
        await two.aclose()
        assert pool.closed and pool not in other.unwrapped._sandbox._pools.values()
    finally:
        for env in (one, two, other):
            await env.aclose()


def _wait_until(condition, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


async def test_scripted_experts_solve_their_tasks():
    tasks = [
        EpisodeTask(env_id=f"miniwob/{task}-v1", env_kwargs={"pool_size": 1}, seed=seed, episode_id=f"{task}/{seed}")
        for task in sorted(SOLVERS)
        for seed in range(SEEDS)
    ]
    episodes = await run_episodes(tasks, make_agent("scripted"), concurrency=4)
    by_task: dict[str, list] = defaultdict(list)
    for ep in episodes:
        by_task[ep.env_id].append(ep)
    rates = {env_id: sum(bool(e.success) for e in eps) / len(eps) for env_id, eps in by_task.items()}
    print("\nMiniWoB++ expert success over", SEEDS, "seeds:")
    for env_id, rate in sorted(rates.items()):
        print(f"  {env_id:45s} {rate:.2f}")
    solved = [t for t, r in rates.items() if r >= 0.9]
    failures = {
        e.episode_id: e.error or [(t.action, t.action_error) for t in e.turns] for e in episodes if not e.success
    }
    assert len(solved) >= 15, f"only {len(solved)} tasks at >= 0.9: {rates}; failures: {failures}"
    assert all(e.info.get("instance_hash") or e.instance_hash for e in episodes)
