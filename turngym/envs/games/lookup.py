"""Lookup: a two-turn tool task in the spirit of MT-GRPO's (Zeng et al. 2025): search, then answer.

Each seed draws a small table of facts, ``n_people`` people of a fixed pool of names each living in
a different city, and asks where one of them lives: ``Where does Ann live?``. Two actions:

    [search NAME]    the tool call: returns the person's record ("Ann lives in Oslo.") or, for a name
                     of the pool that is not in the table, "No record of Bob."
    [answer CITY]    the answer: ends the episode, ``info["success"]`` True for the exact city

The turn limit is 2 (MT-GRPO's ``max_steps=2``): a search, then the answer. Answering at turn 1,
without searching, is allowed; the city must then be guessed (1 in 12). More searches are allowed
where the turn limit is larger. A reply that is not one of the two actions over the pool's names and
cities is an invalid action (reward 0; the third ends the episode); it uses up a turn.

Rewards (per step; ``reward="turn"`` is the default, since the task exists for its turn reward):

- ``reward="turn"``: the first search of the episode whose result contains the answer (a well-formed
  call, for the asked person) pays ``SEARCH_REWARD`` = 0.5, later ones 0 (no farming by searching
  again); the exact answer pays 1.0. The expert's return is 1.5. 0.5 is the value MT-GRPO's code pays
  for its turn reward, the answer present in the search results (``exist_answer_in_search_results``),
  beside 1.0 for the exact match: half an answer, so a search alone never outscores the answer.
- ``reward="outcome"``: only the exact answer pays (1.0), as GRPO-OR's outcome reward.

The wording is short and its words few (a tiny model's task vocabulary, ``task:lookup`` in
``turngym.agents.tiny``, covers them). The expert searches the asked name, then answers the city
its result names.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from turngym.core.actions import BracketedMove
from turngym.core.env import TurnEnv
from turngym.core.errors import ActionError
from turngym.core.types import Action, Observation

NAMES = ("Ann", "Bob", "Cleo", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jon", "Kim", "Leo")
CITIES = ("Paris", "Rome", "Oslo", "Lima", "Cairo", "Tokyo", "Delhi", "Quito", "Dublin", "Madrid", "Berlin", "Vienna")
#: the turn reward of ``reward="turn"``: a search whose result contains the answer (MT-GRPO's 0.5)
SEARCH_REWARD = 0.5
REWARDS = ("turn", "outcome")
_ACTIONS = f"[search NAME], NAME one of {', '.join(NAMES)}; [answer CITY], CITY one of {', '.join(CITIES)}"


class LookupEnv(TurnEnv):
    #: the whole state is picklable attributes: TurnEnv.snapshot() saves them
    snapshot_unsupported = None
    action_format = BracketedMove(
        choices=[f"search {n}" for n in NAMES] + [f"answer {c}" for c in CITIES], example="[search Ann]", what="action"
    )

    def __init__(self, *, n_people: int = 4, reward: Literal["turn", "outcome"] = "turn", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 1 <= n_people <= len(NAMES):
            raise ValueError(f"Lookup n_people={n_people} is out of range: the table holds 1..{len(NAMES)} people")
        if reward not in REWARDS:
            raise ValueError(
                f"Lookup reward={reward!r} is not a reward scheme: use 'turn' ({SEARCH_REWARD} for a search whose "
                "result holds the answer, 1 for the exact answer) or 'outcome' (1 for the exact answer only)"
            )
        self.n_people, self.reward = n_people, reward
        self.description = (
            "Answer a question about where people live. [search NAME] returns the person's record; "
            "[answer CITY] gives your answer and ends the episode."
        )
        self.table: dict[str, str] = {}
        self.person = NAMES[0]
        self.answer = CITIES[0]
        self.found = False  # a search has returned the answer (its turn reward is paid once)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        names = [NAMES[i] for i in rng.permutation(len(NAMES))[: self.n_people]]
        cities = [CITIES[i] for i in rng.permutation(len(CITIES))[: self.n_people]]  # distinct: one holder each
        self.table = dict(zip(names, cities))
        self.person = names[int(rng.integers(self.n_people))]
        self.answer = self.table[self.person]
        self.found = False
        return Observation.text(f"Where does {self.person} live? Use [search NAME], then [answer CITY]."), {}

    def step(self, action: Action):
        try:
            verb, word = self.action_format.parse(action).split(" ")  # the choices: "search NAME", "answer CITY"
        except ActionError as e:  # the format lists 12 of its 24 choices: name them all, by kind
            raise ActionError(f"{e} ({_ACTIONS})") from None
        if verb == "answer":
            right = word == self.answer
            return Observation.text("Right." if right else "Wrong."), float(right), True, False, {"success": right}
        city = self.table.get(word)
        result = f"{word} lives in {city}." if city else f"No record of {word}."
        reward = 0.0
        if self.reward == "turn" and not self.found and self.answer in result:  # MT-GRPO: the result holds it
            self.found = True
            reward = SEARCH_REWARD
        return Observation.text(result), reward, False, False, {}

    def instance_state(self) -> Any:
        return {"table": sorted(self.table.items()), "person": self.person}

    def legal_actions(self) -> list[str]:
        return [f"[{c}]" for c in self.action_format.choices or ()]


_ASKED = re.compile(r"Where does (\w+) live\?")
_RECORD = re.compile(r"(\w+) lives in (\w+)\.")


def expert(env: LookupEnv):
    """Search the asked name, then answer the city of its record (from the observations alone)."""

    def policy(obs: Observation) -> str:
        if m := _RECORD.search(obs.last_text):
            return f"[answer {m.group(2)}]"
        m = _ASKED.search(obs.last_text)
        return f"[search {m.group(1) if m else NAMES[0]}]"

    return policy
