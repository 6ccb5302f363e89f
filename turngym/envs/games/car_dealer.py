"""Car Dealer: sell a car to a customer with a hidden budget and preferences (LMRL-Gym's Car Dealer).

The agent is the dealer. Each seed draws a customer, who wants one kind of car (sedan, SUV, truck,
convertible, minivan or hatchback), prefers a brand and a few features, and has a budget kept to
themselves (20,000 to 70,000 dollars), and a lot of six cars, one of each kind, each with a brand, features
and a list price. The first message lists the lot; the dealer then talks with the customer in plain text.

Actions (free text; an empty reply is the only invalid one):

- a reply that names a car of the lot by its kind ("the SUV", "Trucks") puts that car under discussion;
- a reply that states a price in dollars (``$28,500``, ``$28500``, ``$28.5k``) makes an offer: that price
  for the car the reply names, or else for the car under discussion (the last price and the last car named
  count). A price with no car named yet is no offer (the customer asks which car).

The customer (option ``partner=``, see ``turngym.core.partner``) is by default rule-based:

- asked anything without a car or a price, they say what they want (kind, brand, features); asked about
  their budget, they keep it to themselves;
- told about a car, they say how it fits (kind, brand, features they want that it has or lacks);
- offered a car of another kind than theirs, they decline; offered their kind at a price at most what it is
  worth to them, they buy; above it, they decline and name a price they would pay (a fixed share of that
  worth, 80 to 90 percent, drawn per customer). Worth: the list price times 0.85, plus 0.1 for their brand
  and up to 0.1 for the share of their features the car has, never above the budget. After 3 declined
  offers the customer leaves.

With a model as the customer (``partner="hf:PATH"``, a ``Partner`` callable...), the model is told its
wants, budget and personality, sees the dialogue from its side and decides: a reply holding ``[accept]``
buys the car of the dealer's latest offer at its price, ``[leave]`` ends the visit without a sale.

Reward, after LMRL-Gym (whose "revenue" reward pays the sale price and whose "fancy" one scales it by the
budget): 0 for every turn but the sale, which pays the price divided by the customer's budget, at most 1
(a rule-based customer never pays more than the budget). No sale, no reward. ``info["success"]`` is whether
a sale happened; at most 10 turns (the registry's ``TurnLimit``). The customer's replies are messages named
after the partner (``rule-buyer``, ...), ``info["partner"]`` names it too; the sale or the departure follows
as a plain env message, and ``info["sale"]`` holds the car, the price and the budget.

The expert asks what the customer wants, offers the car of that kind at 1.1 times its list price, and, when
declined, offers the customer's own counter price over 0.9 (at most what the car is worth to them, since they
counter at 90 percent of that worth or less): a sale on every seed, at 0.7 to 1 of the budget.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from turngym.core.actions import FreeText
from turngym.core.partner import PartnerEnv, PartnerTurn
from turngym.core.types import Action, Message, Observation

KINDS = ("sedan", "SUV", "truck", "convertible", "minivan", "hatchback")
BRANDS = ("Toyota", "Honda", "Ford", "Mazda", "Hyundai", "Subaru", "Volkswagen", "BMW", "Audi", "Tesla")
FEATURES = (
    "backup camera", "navigation system", "heated seats", "leather seats", "third-row seating",
    "blind spot monitoring", "sunroof", "Apple CarPlay",
)
BUDGETS = (20_000, 25_000, 30_000, 35_000, 40_000, 50_000, 60_000, 70_000)
PERSONALITIES = ("polite", "talkative", "impatient", "sarcastic", "terse", "friendly", "suspicious", "cheerful")
#: the share of a car's worth a customer names when declining an offer (one per customer)
COUNTER_SHARES = (0.8, 0.85, 0.9)
#: declined offers after which the customer leaves
PATIENCE = 3

_KIND = re.compile(r"\b(sedan|suv|truck|convertible|minivan|hatchback)(?:e?s)?\b", re.IGNORECASE)
_PRICE = re.compile(r"\$\s*(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(\s*[kK]\b)?")
_BUDGET = re.compile(r"\b(budget|afford|spend|price range|how much (?:can|do|would) you)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Car:
    kind: str
    brand: str
    features: tuple[str, ...]
    price: int  # the list price


@dataclass(frozen=True)
class Buyer:
    budget: int
    kind: str
    brand: str
    features: tuple[str, ...]
    personality: str
    counter: float  # the share of a car's worth named when declining


def draw_instance(rng: np.random.Generator) -> tuple[Buyer, tuple[Car, ...]]:
    """A customer and a lot of one car per kind (in a shuffled order), from ``rng``."""
    budget = int(rng.choice(BUDGETS))
    wants = KINDS[int(rng.integers(len(KINDS)))]
    brand = BRANDS[int(rng.integers(len(BRANDS)))]
    features = tuple(FEATURES[i] for i in sorted(rng.choice(len(FEATURES), int(rng.integers(1, 4)), replace=False)))
    buyer = Buyer(
        budget=budget, kind=wants, brand=brand, features=features,
        personality=PERSONALITIES[int(rng.integers(len(PERSONALITIES)))],
        counter=float(COUNTER_SHARES[int(rng.integers(len(COUNTER_SHARES)))]),
    )
    lot = []
    for i in rng.permutation(len(KINDS)):
        kind = KINDS[int(i)]
        theirs = kind == wants
        make = brand if theirs and rng.random() < 0.5 else BRANDS[int(rng.integers(len(BRANDS)))]
        has = tuple(FEATURES[j] for j in sorted(rng.choice(len(FEATURES), int(rng.integers(3, 6)), replace=False)))
        low, high = (0.95, 1.25) if theirs else (0.6, 1.4)
        lot.append(Car(kind=kind, brand=make, features=has, price=_round(budget * rng.uniform(low, high), 500)))
    return buyer, tuple(lot)


def _round(x: float, step: int) -> int:
    return int(round(x / step) * step)


def worth(buyer: Buyer, car: Car) -> int:
    """The most ``buyer`` pays for ``car``: 0 for another kind than theirs, else the list price times 0.85,
    +0.1 for their brand, +0.1 times the share of their features it has, never above the budget."""
    if car.kind != buyer.kind:
        return 0
    share = sum(f in car.features for f in buyer.features) / len(buyer.features)
    fit = 0.85 + 0.1 * (car.brand == buyer.brand) + 0.1 * share
    return min(buyer.budget, int(car.price * fit) // 100 * 100)


def counter_price(buyer: Buyer, car: Car) -> int:
    """The price ``buyer`` names when declining an offer of ``car`` (a share of its worth, down to 500)."""
    return int(buyer.counter * worth(buyer, car)) // 500 * 500


def sale_reward(price: int, budget: int) -> float:
    """The reward of a sale: the price over the customer's budget, at most 1."""
    return min(price / budget, 1.0)


def read_reply(text: str) -> tuple[str | None, int | None]:
    """The car kind (as in ``KINDS``) and the dollar price a dealer's reply names last, each None if none."""
    kinds = _KIND.findall(text)
    kind = next((k for k in KINDS if k.lower() == kinds[-1].lower()), None) if kinds else None
    price = None
    for whole, frac, thousands in _PRICE.findall(text):
        value = float(f"{whole.replace(',', '')}.{frac or 0}") * (1000 if thousands else 1)
        price = round(value) if value > 0 else price
    return kind, price


def _listing(items: tuple[str, ...]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _a(word: str, *, start: bool = False) -> str:
    """``word`` with its indefinite article ("an SUV", "an Audi", "a truck"); ``start``: capitalised."""
    article = "an" if word == "SUV" or word[0] in "AEIOUaeiou" else "a"
    return f"{article.capitalize() if start else article} {word}"


def wants_text(buyer: Buyer) -> str:
    return f"I'm looking for {_a(buyer.kind)}, ideally {_a(buyer.brand)}, with {_listing(buyer.features)}."


def rule_reply(buyer: Buyer, car: Car | None, price: int | None, *, declined: int, text: str) -> tuple[str, str | None]:
    """The rule-based customer's answer to the dealer's reply ``text`` (about ``car`` at ``price``) and its
    verdict: ``"sale"``, ``"declined"`` (an offer declined), ``"leave"`` (the last straw), or None."""
    if price is None:
        if car is None:
            if _BUDGET.search(text):
                return "I'd rather keep my budget to myself. What can you offer me?", None
            return wants_text(buyer), None
        if car.kind != buyer.kind:
            return f"{_a(car.kind, start=True)} is not what I need: I want {_a(buyer.kind)}.", None
        brand = "my favourite brand" if car.brand == buyer.brand else f"not my first choice, I prefer {buyer.brand}"
        has = [f for f in buyer.features if f in car.features]
        lacks = [f for f in buyer.features if f not in car.features]
        parts = [f"The {car.kind} looks right. {_a(car.brand, start=True)}: {brand}."]
        if has:
            parts.append(f"Good, it has {_listing(tuple(has))}.")
        if lacks:
            parts.append(f"Too bad it has no {_listing(tuple(lacks))}.")
        return " ".join([*parts, "What would you sell it for?"]), None
    if car is None:
        return "Which car do you mean? Tell me the car and its price.", None
    value = worth(buyer, car)
    if value and price <= value:
        return f"Deal! I'll take the {car.kind} for ${price:,}.", "sale"
    if declined + 1 >= PATIENCE:
        return "No. We're not getting anywhere: I'm leaving.", "leave"
    if not value:
        return f"I don't want {_a(car.kind)}, I want {_a(buyer.kind)}.", "declined"
    return f"That's more than I'd pay for the {car.kind}. I could do ${counter_price(buyer, car):,}.", "declined"


def buyer_brief(buyer: Buyer) -> str:
    """A model customer's instructions: its wants, budget and personality, how to buy and to leave."""
    return (
        f"You are a customer at a car dealership, talking with the dealer. You want {_a(buyer.kind)}, ideally "
        f"{_a(buyer.brand)}, with {_listing(buyer.features)}. Your budget is ${buyer.budget:,}: never pay more, and "
        f"do not tell the dealer. Your personality: {buyer.personality}. Answer in one or two sentences. When the "
        "dealer offers a car at a price you accept, write [accept]. To leave without buying, write [leave]."
    )


def model_verdict(reply: str, has_offer: bool) -> str | None:
    """A model customer's verdict: ``"sale"`` for ``[accept]`` (when an offer stands), ``"leave"`` for
    ``[leave]``, else None."""
    lower = reply.lower()
    if "[accept]" in lower and has_offer:
        return "sale"
    return "leave" if "[leave]" in lower else None


class CarDealerEnv(PartnerEnv):
    """See the module docstring."""

    #: the whole state is picklable attributes: TurnEnv.snapshot() saves them (all but the partner)
    snapshot_unsupported = None
    partner_role = "buyer"
    action_format = FreeText()
    description = (
        "You are a car dealer. Sell a car from your lot to a customer who has a hidden budget and preferences. "
        "Talk in plain text; to make an offer, name a car of the lot by its kind and state a price in dollars, "
        "e.g. \"The SUV is yours for $28,500.\" The customer accepts, declines or names a price; after "
        f"{PATIENCE} declined offers they leave. A sale pays the price divided by the customer's budget (at most "
        "1); no sale pays nothing."
    )

    def __init__(self, *, partner: Any = None, **kwargs: Any) -> None:
        super().__init__(partner=partner, **kwargs)
        self.buyer: Buyer | None = None
        self.lot: tuple[Car, ...] = ()
        self.discussed: Car | None = None  # the car named last
        self.offer: tuple[Car, int] | None = None  # the dealer's latest offer
        self.declined = 0
        self.dialogue: list[tuple[str, str]] = []  # (dealer, customer) lines, for a model customer

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.buyer, self.lot = draw_instance(self.np_random)
        self.discussed, self.offer, self.declined, self.dialogue = None, None, 0, []
        lines = "\n".join(
            f"- {c.kind}: {_a(c.brand)} with {_listing(c.features)}; list price ${c.price:,}" for c in self.lot
        )
        return Observation.text(f"{self.description}\nYour lot:\n{lines}\nA customer walks in. Greet them."), {}

    def play_turn(self, action: Action) -> PartnerTurn:
        text = self.action_format.parse(action)
        buyer = self.buyer
        assert buyer is not None, "reset() first"
        kind, price = read_reply(text)
        if kind is not None:
            self.discussed = next(c for c in self.lot if c.kind == kind)
        car = self.discussed
        if price is not None and car is not None:
            self.offer = (car, price)
        if self.rule_based:
            reply, verdict = rule_reply(buyer, car, price, declined=self.declined, text=text)
        else:
            reply = (yield self._buyer_messages(text)).strip() or "..."
            verdict = model_verdict(reply, self.offer is not None)
        self.dialogue.append((text, reply))
        info: dict[str, Any] = {"partner": self.partner_name}
        if verdict == "declined":
            self.declined += 1
        if verdict == "sale":
            sold, paid = self.offer  # type: ignore[misc]  # a sale needs an offer
            info |= {"success": True, "sale": {"car": sold.kind, "price": paid, "budget": buyer.budget}}
            note = f"The customer bought the {sold.kind} for ${paid:,}."
            return self.partner_observation(reply, note), sale_reward(paid, buyer.budget), True, False, info
        if verdict == "leave":
            info["success"] = False
            return self.partner_observation(reply, "The customer left without buying."), 0.0, True, False, info
        return self.partner_observation(reply), 0.0, False, False, info

    def _buyer_messages(self, text: str) -> list[Message]:
        """What a model customer reads: its brief, then the dialogue from its side (the dealer as user)."""
        assert self.buyer is not None
        messages = [Message(role="system", content=buyer_brief(self.buyer))]
        for dealer, customer in self.dialogue:
            messages += [Message(role="user", content=dealer), Message(role="assistant", content=customer)]
        return [*messages, Message(role="user", content=text)]

    def instance_state(self) -> Any:
        return {"buyer": asdict(self.buyer) if self.buyer else None, "lot": [asdict(c) for c in self.lot]}

    def legal_actions(self) -> list[str]:
        """Sample replies for random players and the checks: two questions, each car shown, and each car
        offered at 0.8 to 1.2 times its list price."""
        out = ["Hello! What kind of car are you looking for?", "What is your budget?"]
        out += [f"Have a look at the {c.kind}." for c in self.lot]
        out += [f"The {c.kind} is yours for ${_round(c.price * m, 500):,}." for c in self.lot for m in (0.8, 0.9, 1.0, 1.1, 1.2)]
        return out


_WANT = re.compile(r"looking for an? (\w+)", re.IGNORECASE)
_DOLLARS = re.compile(r"\$\s*(\d[\d,]*)")


def expert(env: CarDealerEnv):
    """Ask what the customer wants; offer that car at 1.1 times its list price; when declined, offer the
    customer's counter price over 0.9 (rounded down to 100), which never exceeds the car's worth to them.
    Reads the lot (shown to the dealer) and the customer's replies; a model customer that never counters
    gets offers 10 percent lower each turn."""
    lot = {c.kind.lower(): c for c in env.lot}
    asked = False
    car: Car | None = None
    offer = 0

    def policy(obs: Observation) -> str:
        nonlocal asked, car, offer
        text = obs.messages[0].text if obs.messages else ""
        if not asked:
            asked = True
            return "Hello! What kind of car are you looking for?"
        if car is None:  # the answer to the opening question names the kind they want
            m = _WANT.search(text)
            car = lot.get(m.group(1).lower() if m else "", next(iter(lot.values())))
            offer = _round(car.price * 1.1, 100)
            return f"Then the {car.kind} is for you. It is yours for ${offer:,}."
        amounts = [int(a.replace(",", "")) for a in _DOLLARS.findall(text)]
        counter = amounts[-1] if amounts and amounts[-1] < offer else 0
        offer = int(counter / 0.9) // 100 * 100 if counter else _round(offer * 0.9, 100)
        return f"All right: the {car.kind} for ${offer:,}."

    return policy
