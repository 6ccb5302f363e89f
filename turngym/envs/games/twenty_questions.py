"""Twenty Questions: find the hidden object by asking about its attributes (ArCHer, LMRL-Gym).

The ontology ships with the package (``data/twenty_questions.json``, made by
``scripts/data/make_twenty_questions.py``): 150 common objects, each with a yes/no answer to each of 61
attribute questions ("Is it alive?", "Can it fly?", ...); no two objects share all answers. The
default oracle is rule-based: it answers from the table (``oracle=`` puts a model in its place:
``questions.py``). Actions, reward and the expert: ``questions.py``
(-1 per turn, 0 for the right guess, at most 20 turns).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from turngym.envs.games.questions import QuestionBank, QuestionGameEnv
from turngym.envs.games.questions import expert as expert


@cache
def ontology_bank() -> QuestionBank:
    data = json.loads((resources.files("turngym.envs.games") / "data" / "twenty_questions.json").read_text())
    objects = data["objects"]
    questions = {
        text: sum(1 << i for i, o in enumerate(objects) if o["attributes"][key])
        for key, text in data["questions"].items()
    }
    menu = "Questions I can answer:\n" + "\n".join(f"- {text}" for text in data["questions"].values())
    return QuestionBank.build(
        kind="object",
        items=[o["name"] for o in objects],
        aliases={o["name"]: o["aliases"] for o in objects},
        questions=questions,
        menu=menu,
    )


class TwentyQuestionsEnv(QuestionGameEnv):
    intro = "Let's play Twenty Questions. I am thinking of an object; find it in at most 20 turns."
    title = "Twenty Questions"

    @property
    def bank(self) -> QuestionBank:  # type: ignore[override]
        return ontology_bank()
