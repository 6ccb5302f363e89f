"""Guess My City: find the hidden city by asking yes/no questions about it (ArCHer, LMRL-Gym).

141 cities ship with the package (``data/cities.json``, made by ``scripts/data/make_cities.py``): country,
continent, national capital or not, on the sea coast or not, approximate metropolitan population and
rounded coordinates. The rule-based oracle answers these question forms (listed in the prompt):

    Is it in CONTINENT?  Is it in COUNTRY?  Is it a national capital?  Is it on the coast?
    Does it have more than N million people?  (N = 1, 2, 5, 10, 20)
    Is it in the northern hemisphere?  Is it in the eastern hemisphere?  Is it in the tropics?
    Is it north of latitude X?  (X = -30, -15, 15, 30, 40, 50)
    Is it east of longitude X?  (X = -120, -90, -60, -30, 30, 60, 90, 120, 150)
    Does its name start with LETTER?

Actions, reward and the expert: ``questions.py`` (-1 per turn, 0 for the right guess, at most 20 turns).
LMRL-Gym's Guess My City answers free-form questions with an LLM oracle; the default oracle here is
rule-based, so it is exact and fast, and ``oracle="hf:PATH"`` (or another model partner, see
``questions.py``) gives LMRL-Gym's setting: any yes/no question, answered by the model.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from turngym.envs.games.questions import QuestionBank, QuestionGameEnv
from turngym.envs.games.questions import expert as expert

POPULATION_STEPS = (1, 2, 5, 10, 20)
LATITUDES = (-30, -15, 15, 30, 40, 50)
LONGITUDES = (-120, -90, -60, -30, 30, 60, 90, 120, 150)


def _mask(cities: list[dict], test) -> int:
    return sum(1 << i for i, c in enumerate(cities) if test(c))


@cache
def city_bank() -> QuestionBank:
    cities = json.loads((resources.files("turngym.envs.games") / "data" / "cities.json").read_text())["cities"]
    continents = sorted({c["continent"] for c in cities})
    countries = sorted({c["country"] for c in cities})
    letters = sorted({c["name"][0].upper() for c in cities})
    q: dict[str, int] = {}
    for k in continents:
        q[f"Is it in {k}?"] = _mask(cities, lambda c, k=k: c["continent"] == k)
    for k in countries:
        q[f"Is it in {k}?"] = _mask(cities, lambda c, k=k: c["country"] == k)
    q["Is it a national capital?"] = _mask(cities, lambda c: c["capital"])
    q["Is it on the coast?"] = _mask(cities, lambda c: c["coastal"])
    for n in POPULATION_STEPS:
        q[f"Does it have more than {n} million people?"] = _mask(cities, lambda c, n=n: c["population_millions"] > n)
    q["Is it in the northern hemisphere?"] = _mask(cities, lambda c: c["lat"] > 0)
    q["Is it in the eastern hemisphere?"] = _mask(cities, lambda c: c["lon"] > 0)
    q["Is it in the tropics?"] = _mask(cities, lambda c: abs(c["lat"]) < 23.44)
    for x in LATITUDES:
        q[f"Is it north of latitude {x}?"] = _mask(cities, lambda c, x=x: c["lat"] > x)
    for x in LONGITUDES:
        q[f"Is it east of longitude {x}?"] = _mask(cities, lambda c, x=x: c["lon"] > x)
    for letter in letters:
        q[f"Does its name start with {letter}?"] = _mask(cities, lambda c, L=letter: c["name"][0].upper() == L)
    menu = (
        "Questions I can answer (population = metropolitan area; latitude/longitude in degrees, "
        "negative = south/west):\n"
        f"- Is it in CONTINENT? ({', '.join(continents)})\n"
        f"- Is it in COUNTRY? ({', '.join(countries)})\n"
        "- Is it a national capital?\n- Is it on the coast?\n"
        f"- Does it have more than N million people? (N = {', '.join(map(str, POPULATION_STEPS))})\n"
        "- Is it in the northern hemisphere?\n- Is it in the eastern hemisphere?\n- Is it in the tropics?\n"
        f"- Is it north of latitude X? (X = {', '.join(map(str, LATITUDES))})\n"
        f"- Is it east of longitude X? (X = {', '.join(map(str, LONGITUDES))})\n"
        f"- Does its name start with LETTER? ({', '.join(letters)})"
    )
    return QuestionBank.build(kind="city", items=[c["name"] for c in cities], aliases={}, questions=q, menu=menu)


class GuessMyCityEnv(QuestionGameEnv):
    intro = "Let's play Guess My City. I am thinking of a city; find it in at most 20 turns."
    title = "Guess My City"

    @property
    def bank(self) -> QuestionBank:  # type: ignore[override]
        return city_bank()
