"""Question games: the agent asks yes/no questions about a hidden item, then guesses it.

The shared engine of Twenty Questions and Guess My City. A ``QuestionBank`` holds the items and the
askable questions, each question as a bit mask of the items whose answer is yes; the rule-based
oracle answers from it. Actions (bracketed, case and the trailing "?" do not matter):

    [ask is it alive]      a question from the list shown in the first message -> "Yes." / "No."
    [guess elephant]       a guess of one of the listed items (or an alias)

Reward as ArCHer and LMRL-Gym define Twenty Questions and Guess My City: -1 for every turn, 0 for
the turn with the right guess, which ends the episode with ``info["success"] = True``. The turn
limit (20) is the registry's ``TurnLimit``. An unknown question or item is an invalid action
(penalty -1, like any other turn).

The expert halves: it keeps the items consistent with every answer so far and asks the question
that splits them most evenly, then guesses the last one left. It reads only the answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from turngym.core.actions import BracketedMove
from turngym.core.env import TurnEnv
from turngym.core.errors import ActionError
from turngym.core.types import Action, Observation

_SPACES = re.compile(r"\s+")
_TRAILING = re.compile(r"[\s?.!]+$")
_ARTICLE = re.compile(r"^(?:a|an|the)\s+")


def normalize(text: str) -> str:
    """Lower case, single spaces, no trailing punctuation: the key of questions and names."""
    return _TRAILING.sub("", _SPACES.sub(" ", text.strip().lower()))


@dataclass(frozen=True)
class QuestionBank:
    """Items and yes/no questions. ``questions[q]`` has bit ``i`` set when item ``i`` answers yes."""

    kind: str
    items: tuple[str, ...]
    aliases: Mapping[str, int]
    questions: Mapping[str, int]
    menu: str  # how the questions are described in the prompt

    @classmethod
    def build(
        cls, *, kind: str, items: list[str], aliases: dict[str, list[str]], questions: dict[str, int], menu: str
    ) -> QuestionBank:
        names = {normalize(n): i for i, n in enumerate(items)}
        for i, n in enumerate(items):
            for a in aliases.get(n, []):
                names.setdefault(normalize(a), i)
        return cls(kind, tuple(items), names, {normalize(q): m for q, m in questions.items()}, menu)


class QuestionGameEnv(TurnEnv):
    """Base of the question games; a subclass sets ``bank`` (a ``QuestionBank``) and ``intro``."""

    #: the whole state is picklable attributes: TurnEnv.snapshot() saves them
    snapshot_unsupported = None
    invalid_penalty = -1.0
    bank: QuestionBank
    intro: str = ""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.action_format = BracketedMove(
            move_pattern=r"(?:ask|guess)\s+\S.*", example="[ask is it alive]", what="question or guess"
        )
        self.description = (
            f"{self.intro} Ask yes/no questions with [ask QUESTION] and guess with [guess NAME]. "
            f"Every turn costs 1 point; a right guess ends the game.\n{self.bank.menu}\n"
            f"The possible {self.bank.kind}s: {', '.join(self.bank.items)}."
        )
        self.secret = 0
        self._ex_question = next(iter(self.bank.questions))
        self._prompt = f"{self.description} {self.action_format.describe()}"

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.secret = int(self.np_random.integers(len(self.bank.items)))
        return Observation.text(self._prompt), {}

    def step(self, action: Action):
        verb, _, rest = self.action_format.parse(action).partition(" ")
        key = normalize(rest)
        bank = self.bank
        if verb.lower() == "ask":
            mask = bank.questions.get(key)
            if mask is None:
                raise ActionError(
                    f"I cannot answer {rest.strip()!r}: ask one of the questions listed in the first message, "
                    f"e.g. [ask {self._ex_question}]"
                )
            return Observation.text("Yes." if mask >> self.secret & 1 else "No."), -1.0, False, False, {}
        idx = bank.aliases.get(key)
        if idx is None:
            idx = bank.aliases.get(_ARTICLE.sub("", key))
        if idx is None:
            raise ActionError(
                f"{rest.strip()!r} is not one of the {bank.kind}s in this game: guess a name from the list "
                f"in the first message, e.g. [guess {bank.items[0]}]"
            )
        name = bank.items[self.secret]
        if idx == self.secret:
            return Observation.text(f"Yes! It is {name}."), 0.0, True, False, {"success": True}
        return Observation.text(f"No, it is not {bank.items[idx]}."), -1.0, False, False, {}

    def instance_state(self) -> Any:
        return {"kind": self.bank.kind, "secret": self.bank.items[self.secret]}

    def legal_actions(self) -> list[str]:
        return [f"[ask {q}]" for q in self.bank.questions] + [f"[guess {n}]" for n in self.bank.items]


def expert(env: QuestionGameEnv):
    """Halving: ask the question that splits the remaining items most evenly; guess when one is left."""
    bank = env.bank
    everything = (1 << len(bank.items)) - 1
    candidates = everything
    questions = list(bank.questions.items())
    last: tuple[str, int] | None = None

    def policy(obs: Observation) -> str:
        nonlocal candidates, last
        text = obs.last_text
        if last is not None and not text.startswith("Invalid"):
            kind, value = last
            if kind == "ask":
                candidates &= value if text.startswith("Yes") else ~value
            else:
                candidates &= ~(1 << value)
        if not candidates:  # answers contradict the bank (a custom oracle): start over
            candidates = everything
        n = candidates.bit_count()
        best, best_gap = None, n
        if n > 1:
            for q, mask in questions:
                gap = abs(2 * (candidates & mask).bit_count() - n)
                if gap < best_gap:
                    best, best_gap = (q, mask), gap
        if best is None:  # one item left, or no question tells the rest apart
            idx = (candidates & -candidates).bit_length() - 1
            last = ("guess", idx)
            return f"[guess {bank.items[idx]}]"
        last = ("ask", best[1])
        return f"[ask {best[0]}]"

    return policy
