"""WebShopLite: the scoring function, the shop served and stopped by the env, the scripted expert,
partial credit for a wrong option, and that the page can reach only the shop."""

from __future__ import annotations

import socket

import numpy as np
import pytest

import turngym
from turngym.envs.web.webshop.catalogue import Purchase, make_catalogue, make_task, search, webshop_reward
from turngym.envs.web.webshop.env import ORIGIN
from turngym.envs.web.webshop.expert import expert


def test_webshop_reward_gives_partial_credit():
    rng = np.random.default_rng(0)
    catalogue = make_catalogue(rng, 60)
    task = make_task(rng, catalogue)
    target = next(p for p in catalogue if p.id == task.target)
    assert webshop_reward(task, Purchase(target, dict(task.options))) == 1.0
    if task.options:
        opt, value = next(iter(task.options.items()))
        wrong = {**task.options, opt: "no such value"}
        n = len(task.attributes) + len(task.options) + 1
        assert webshop_reward(task, Purchase(target, wrong)) == pytest.approx((n - 1) / n)
    other = next(p for p in catalogue if p.category != task.category)
    assert webshop_reward(task, Purchase(other, {})) == 0.0
    assert search(catalogue, target.title)[0] is target
    assert make_task(np.random.default_rng(5), make_catalogue(np.random.default_rng(5))) == make_task(
        np.random.default_rng(5), make_catalogue(np.random.default_rng(5))
    )


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.browser
@pytest.mark.usefixtures("browser_required")
async def test_expert_buys_the_right_product_and_the_shop_stops_with_the_env():
    env = turngym.make("turngym/WebShopLite-v0", pool_size=1)
    try:
        rewards, hashes = [], set()
        for seed in range(5):
            obs, info = await env.areset(seed=seed)
            hashes.add(info["instance_hash"])
            assert "Instruction:" in obs.last_text and info["goal"] in obs.last_text
            policy = expert(env.unwrapped)
            for _ in range(15):
                obs, reward, term, trunc, info = await env.astep(policy(obs))
                assert info.get("action_error") is None, info
                if term or trunc:
                    break
            rewards.append(reward)
            assert term and info["success"] and obs.messages[-1].images  # the final screenshot
        assert rewards == [1.0] * 5 and len(hashes) == 5
        port = env.unwrapped.server.port
        assert _port_open(port)
    finally:
        await env.aclose()
    assert not _port_open(port)


@pytest.mark.browser
@pytest.mark.usefixtures("browser_required")
async def test_wrong_option_scores_partial_credit_and_other_origins_are_blocked():
    env = turngym.make("turngym/WebShopLite-v0", pool_size=1)
    try:
        obs, info = await env.areset(seed=11)
        shop = env.unwrapped
        task = shop.state.task
        target = shop.state.product(task.target)
        origin = ORIGIN  # the shown origin, the same in every process
        # straight to the product page, then add it without choosing options
        await env.astep(f'goto("{origin}/item/{target.id}")')
        add = next(e for e in shop.session.last.elements.values() if e.name == "Add to cart")
        await env.astep(f"click({add.id})")
        checkout = next(e for e in shop.session.last.elements.values() if e.name == "Checkout")
        obs, reward, term, trunc, info = await env.astep(f"click({checkout.id})")
        n = len(task.attributes) + len(task.options) + 1
        assert term and reward == pytest.approx((n - len(task.options)) / n) and info["success"] is (not task.options)

        obs, info = await env.areset(seed=12)
        obs, reward, term, trunc, info = await env.astep('goto("http://127.0.0.1:9/")')
        assert "not allowed" in info["action_error"]
        fetched = await shop.session.evaluate("() => fetch('http://127.0.0.1:9/').then(() => 'ok', () => 'blocked')")
        assert fetched == "blocked"
        # the serving origin itself is not the page's: only the shown one reaches the shop
        direct = f"() => fetch('{shop.server.origin}/').then(() => 'ok', () => 'blocked')"
        assert await shop.session.evaluate(direct) == "blocked"
        assert await shop.session.evaluate(f"() => fetch('{ORIGIN}/cart').then(r => r.status)") == 200
    finally:
        await env.aclose()


@pytest.mark.browser
@pytest.mark.usefixtures("browser_required")
def test_observations_carry_no_port():
    """The shop runs on a free port per env, but the page sees one origin, so no observation names the port
    (tests/envs/test_check_all.py runs the checker's determinism check: two envs, one seed, the same pages)."""
    env = turngym.make("turngym/WebShopLite-v0", pool_size=1)
    try:
        obs, _ = env.reset(seed=3)
        text = obs.messages[-1].content[0].text
        assert f"URL: {ORIGIN}/" in text and str(env.unwrapped.server.port) not in text
    finally:
        env.close()
