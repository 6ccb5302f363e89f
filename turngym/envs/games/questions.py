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

The oracle (option ``oracle=``, a partner: ``turngym.core.partner``): by default the rule-based one
above (``"rule"``). With a model as the oracle (a ``Partner`` callable, or an agent spec such as
``"hf:PATH"`` that the runner builds), any yes/no question may be asked: the oracle is told the hidden
item and the question, and its reply, as it wrote it, is the answer the agent sees. Guesses are always
judged by the env. Every answer is a message named after the oracle (``rule-oracle``, ``hf-tiny``...),
and ``info["partner"]`` names it too.

The expert halves: it keeps the items consistent with every answer so far and asks the question
that splits them most evenly, then guesses the last one left. It reads only the answers (a reply
that starts with "Yes" is a yes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from turngym.core.actions import BracketedMove
from turngym.core.errors import ActionError
from turngym.core.partner import PartnerEnv, PartnerTurn
from turngym.core.types import Action, Message, Observation

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


class QuestionGameEnv(PartnerEnv):
    """Base of the question games; a subclass sets ``bank`` (a ``QuestionBank``), ``intro`` and ``title``."""

    #: the whole state is picklable attributes: TurnEnv.snapshot() saves them (all but the oracle)
    snapshot_unsupported = None
    invalid_penalty = -1.0
    partner_option = "oracle"
    partner_role = "oracle"
    bank: QuestionBank
    intro: str = ""
    title: str = ""

    def __init__(self, *, oracle: Any = None, **kwargs: Any) -> None:
        super().__init__(partner=oracle, **kwargs)
        self.action_format = BracketedMove(
            move_pattern=r"(?:ask|guess)\s+\S.*", example="[ask is it alive]", what="question or guess"
        )
        if self.rule_based:
            asking = "Ask yes/no questions with [ask QUESTION]"
            menu = f"\n{self.bank.menu}\n"
        else:
            asking = f"Ask any yes/no question with [ask QUESTION] (the oracle is {self.partner_name})"
            menu = "\n"
        self.description = (
            f"{self.intro} {asking} and guess with [guess NAME]. "
            f"Every turn costs 1 point; a right guess ends the game.{menu}"
            f"The possible {self.bank.kind}s: {', '.join(self.bank.items)}."
        )
        self.secret = 0
        self._ex_question = next(iter(self.bank.questions))
        self._prompt = f"{self.description} {self.action_format.describe()}"

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.secret = int(self.np_random.integers(len(self.bank.items)))
        return Observation.text(self._prompt), {}

    def play_turn(self, action: Action) -> PartnerTurn:
        verb, _, rest = self.action_format.parse(action).partition(" ")
        if verb.lower() == "ask":
            if self.rule_based:
                answer = self._rule_answer(rest)
            else:
                answer = (yield self._oracle_messages(rest)).strip() or "(no answer)"
            return self.partner_observation(answer), -1.0, False, False, {"partner": self.partner_name}
        bank = self.bank
        key = normalize(rest)
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

    def _rule_answer(self, question: str) -> str:
        mask = self.bank.questions.get(normalize(question))
        if mask is None:
            raise ActionError(
                f"I cannot answer {question.strip()!r}: ask one of the questions listed in the first message, "
                f"e.g. [ask {self._ex_question}]"
            )
        return "Yes." if mask >> self.secret & 1 else "No."

    def _oracle_messages(self, question: str) -> list[Message]:
        """What a model oracle is asked: the game and the hidden item (system), the question (user)."""
        kind, name = self.bank.kind, self.bank.items[self.secret]
        system = (
            f"You are the oracle of a game of {self.title}. The hidden {kind} is: {name}. The player asks yes/no "
            f"questions about it. Answer each question truthfully, starting with Yes or No, in one short sentence; "
            f"never name the hidden {kind}."
        )
        return [Message(role="system", content=system), Message(role="user", content=question.strip())]

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
