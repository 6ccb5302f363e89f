"""Car Dealer (LMRL-Gym): the rule-based customer, offers read from free text, rewards, the expert, the checks.

A model customer (``partner=``) is tested in test_partners.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import turngym
from tests.envs.games.play import success_rate
from turngym.core.checker import check_registered_env
from turngym.envs.games.car_dealer import (
    PATIENCE,
    Buyer,
    Car,
    counter_price,
    read_reply,
    rule_reply,
    sale_reward,
    worth,
)

ID = "turngym/CarDealer-v0"
BUYER = Buyer(
    budget=40_000, kind="SUV", brand="Mazda", features=("sunroof", "heated seats"), personality="polite", counter=0.85
)
SUV = Car(kind="SUV", brand="Mazda", features=("sunroof", "backup camera"), price=42_000)
TRUCK = Car(kind="truck", brand="Ford", features=("sunroof",), price=30_000)


@pytest.mark.parametrize(
    ("text", "kind", "price"),
    [
        ("The SUV is yours for $28,500.", "SUV", 28_500),
        ("how about the suv? $28500", "SUV", 28_500),
        ("Trucks! $28.5k", "truck", 28_500),
        ("The sedan is $30,000, the minivan $35,000.", "minivan", 35_000),  # the last of each counts
        ("Hello! What are you looking for?", None, None),
        ("It costs $0.", None, None),  # no positive amount: no price
        ("Twenty-eight thousand for the convertible", "convertible", None),  # a price needs the $ form
    ],
)
def test_replies_name_a_car_and_a_price(text, kind, price):
    assert read_reply(text) == (kind, price)


def test_worth_counter_and_reward():
    # 42,000 * (0.85 + 0.1 brand + 0.1 * 1/2 features) = 42,000, capped at the budget
    assert worth(BUYER, SUV) == 40_000
    assert worth(BUYER, TRUCK) == 0  # not their kind
    assert counter_price(BUYER, SUV) == 34_000  # 0.85 * 40,000, down to 500
    assert counter_price(BUYER, SUV) <= 0.9 * worth(BUYER, SUV)
    assert sale_reward(30_000, 40_000) == 0.75
    assert sale_reward(50_000, 40_000) == 1.0  # a model customer may pay more: the reward stops at 1


def test_the_customer_buys_at_its_worth_and_declines_above_it():
    reply, verdict = rule_reply(BUYER, SUV, 40_000, declined=0, text="$40,000 for the SUV")
    assert verdict == "sale" and "$40,000" in reply
    reply, verdict = rule_reply(BUYER, SUV, 40_100, declined=0, text="$40,100 for the SUV")
    assert verdict == "declined" and "$34,000" in reply  # the counter price
    assert rule_reply(BUYER, TRUCK, 1_000, declined=0, text="")[1] == "declined"  # another kind, even cheap
    assert rule_reply(BUYER, SUV, 45_000, declined=PATIENCE - 1, text="")[1] == "leave"


def test_talk_without_an_offer_is_no_verdict():
    wants, verdict = rule_reply(BUYER, None, None, declined=0, text="Hi there!")
    assert verdict is None and "SUV" in wants and "Mazda" in wants and "sunroof" in wants
    secret, _ = rule_reply(BUYER, None, None, declined=0, text="What's your budget?")
    assert "40,000" not in secret
    fit, _ = rule_reply(BUYER, SUV, None, declined=0, text="Look at the SUV")
    assert "heated seats" in fit and "sunroof" in fit
    which, verdict = rule_reply(BUYER, None, 20_000, declined=0, text="$20,000!")
    assert verdict is None and "Which car" in which


def test_an_episode_sells_and_pays_price_over_budget():
    env = turngym.make(ID)
    env.reset(seed=3)
    game = env.unwrapped
    car = next(c for c in game.lot if c.kind == game.buyer.kind)
    value = worth(game.buyer, car)
    obs, reward, terminated, _, info = env.step(f"The {car.kind} for ${value + 1000:,}.")
    assert reward == 0.0 and not terminated and obs.messages[0].name == "rule-buyer" and info["partner"] == "rule-buyer"
    obs, reward, terminated, _, info = env.step(f"Fine, ${value:,}.")  # the car under discussion
    assert terminated and info["success"] is True and reward == pytest.approx(value / game.buyer.budget)
    assert info["sale"] == {"car": car.kind, "price": value, "budget": game.buyer.budget}
    assert obs.messages[-1].name is None and "bought" in obs.messages[-1].text


def test_three_declined_offers_end_without_a_sale():
    env = turngym.make(ID)
    env.reset(seed=4)
    game = env.unwrapped
    car = next(c for c in game.lot if c.kind == game.buyer.kind)
    results = [env.step(f"The {car.kind} for ${car.price * 3:,}.") for _ in range(PATIENCE)]
    assert [r[2] for r in results] == [False] * (PATIENCE - 1) + [True]
    assert results[-1][4]["success"] is False and sum(r[1] for r in results) == 0.0


def test_an_empty_reply_is_invalid():
    env = turngym.make(ID)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step("   ")
    assert info["action_error"] and reward == 0.0 and not terminated


def test_expert_sells_on_almost_every_seed():
    rate, turns, ret = success_rate(ID, "expert", range(100))
    assert rate >= 0.95 and turns <= 4 and ret >= 0.7


def test_random_agent_mostly_fails():
    rate, _, ret = success_rate(ID, "random", range(100))
    assert rate < 0.5 and ret < 0.4


def test_an_agent_that_never_offers_gets_nothing():
    env = turngym.make(ID)
    env.reset(seed=5)
    done, total, info = False, 0.0, {}
    while not done:
        _, reward, terminated, truncated, info = env.step("Lovely weather today, isn't it?")
        total += reward
        done = terminated or truncated
    assert truncated and info["success"] is False and total == 0.0


def test_same_seed_same_instance_and_dialogue():
    def rollout(env, seed):
        obs, info = env.reset(seed=seed)
        rng, texts = np.random.default_rng(seed), [obs.last_text]
        for _ in range(6):
            legal = env.unwrapped.legal_actions()
            obs, _, terminated, truncated, _ = env.step(legal[int(rng.integers(len(legal)))])
            texts.append(str(obs))
            if terminated or truncated:
                break
        return info["instance_hash"], texts

    a, b = turngym.make(ID), turngym.make(ID)
    assert rollout(a, 11) == rollout(b, 11) == rollout(a, 11)
    assert len({a.reset(seed=s)[1]["instance_hash"] for s in range(20)}) >= 18


def test_the_checker_catches_a_car_dealer_that_ignores_its_seed():
    """The checks are not vacuous on partner envs: a variant that draws its customer unseeded fails them."""
    from turngym.envs.games.car_dealer import CarDealerEnv

    class Unseeded(CarDealerEnv):
        def reset(self, *, seed=None, options=None):
            return super().reset(seed=None, options=options)

    turngym.register("partnertest/UnseededCarDealer-v0", Unseeded, max_turns=10)
    problems = check_registered_env("partnertest/UnseededCarDealer-v0")
    assert any(p.startswith("same seed, same instance") for p in problems)
