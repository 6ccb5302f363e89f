"""Registration of the text worlds: ``scienceworld/<task>-v0`` (30 tasks), ``twx/<game>-v0`` (8 games)
and ``textworld/custom-v0``.

The lists are written here, so registering imports neither package (nor starts a JVM). Both need a
Java runtime (``bin:java``) and their PyPI package (``pip install 'turngym[textworlds]'``), which
bundles the engine's jar. Turn limits leave the gold path room: ScienceWorld 150 commands, more for the
tasks whose gold paths are long (``SCIENCEWORLD_LONG``: up to 192 commands for the unnamed-surfaces
friction task); TextWorldExpress 200 (CookingWorld's gold path wanders: over 100 commands for some seeds).

``textworld/custom-v0``: TextWorld games generated offline with ``tw-make`` from the seed (no JVM:
Jericho plays them in-process); turn limit 100 (the walkthrough of the default 5-action quest is short).
"""

from __future__ import annotations

from turngym.core.registry import register

_PKG = "turngym.envs.textworlds"

#: ScienceWorld's tasks (its ``tasks.json``): task name -> (topic, the paper's name)
SCIENCEWORLD_TASKS = {
    "boil": ("Matter", "Changes of State (Boiling)"),
    "melt": ("Matter", "Changes of State (Melting)"),
    "freeze": ("Matter", "Changes of State (Freezing)"),
    "change-the-state-of-matter-of": ("Matter", "Changes of State (Any)"),
    "use-thermometer": ("Measurement", "Use Thermometer"),
    "measure-melting-point-known-substance": ("Measurement", "Measuring Boiling Point (known)"),
    "measure-melting-point-unknown-substance": ("Measurement", "Measuring Boiling Point (unknown)"),
    "power-component": ("Electricity", "Create a circuit"),
    "power-component-renewable-vs-nonrenewable-energy": ("Electricity", "Renewable vs Non-renewable Energy"),
    "test-conductivity": ("Electricity", "Test Conductivity (known)"),
    "test-conductivity-of-unknown-substances": ("Electricity", "Test Conductivity (unknown)"),
    "find-living-thing": ("Classification", "Find a living thing"),
    "find-non-living-thing": ("Classification", "Find a non-living thing"),
    "find-plant": ("Classification", "Find a plant"),
    "find-animal": ("Classification", "Find an animal"),
    "grow-plant": ("Biology", "Grow a plant"),
    "grow-fruit": ("Biology", "Grow a fruit"),
    "chemistry-mix": ("Chemistry", "Mixing (generic)"),
    "chemistry-mix-paint-secondary-color": ("Chemistry", "Mixing paints (secondary colours)"),
    "chemistry-mix-paint-tertiary-color": ("Chemistry", "Mixing paints (tertiary colours)"),
    "lifespan-longest-lived": ("Biology", "Identify longest-lived animal"),
    "lifespan-shortest-lived": ("Biology", "Identify shortest-lived animal"),
    "lifespan-longest-lived-then-shortest-lived": ("Biology", "Identify longest-then-shortest-lived animal"),
    "identify-life-stages-1": ("Biology", "Identify life stages (plant)"),
    "identify-life-stages-2": ("Biology", "Identify life stages (animal)"),
    "inclined-plane-determine-angle": ("Forces", "Inclined Planes (determine angle)"),
    "inclined-plane-friction-named-surfaces": ("Forces", "Friction (known surfaces)"),
    "inclined-plane-friction-unnamed-surfaces": ("Forces", "Friction (unknown surfaces)"),
    "mendelian-genetics-known-plant": ("Biology", "Mendelian Genetics (known plants)"),
    "mendelian-genetics-unknown-plant": ("Biology", "Mendelian Genetics (unknown plants)"),
}
#: the turn limit of a task: SCIENCEWORLD_TURNS, or more where its gold paths are long
SCIENCEWORLD_TURNS = 150
SCIENCEWORLD_LONG = {
    "inclined-plane-friction-unnamed-surfaces": 300,
    "mendelian-genetics-known-plant": 250,
    "mendelian-genetics-unknown-plant": 250,
    "inclined-plane-friction-named-surfaces": 200,
    "measure-melting-point-unknown-substance": 200,
}

#: TextWorldExpress's games: name -> what it is
TWX_GAMES = {
    "cookingworld": "CookingWorld: find the recipe's ingredients, prepare them and eat the meal",
    "twc": "TextWorld Commonsense: put objects away where they belong",
    "coin": "Coin Collector: explore the rooms to find the coin",
    "mapreader": "Map Reader: read a map and bring the coin to the box",
    "arithmetic": "Arithmetic: solve a math problem, put the item of that quantity in the box",
    "sorting": "Sorting: put objects in the box in order of quantity",
    "simonsays": "Simon Says: do exactly what Simon says",
    "peckingorder": "Peck(ing order): follow the instructions book, step after step",
}
TWX_TURNS = 200

TEXTWORLD_TURNS = 100

_REQUIRES = ("bin:java",)


def register_textworlds() -> None:
    for task, (topic, title) in SCIENCEWORLD_TASKS.items():
        register(
            f"scienceworld/{task}-v0",
            f"{_PKG}.scienceworld:ScienceWorldEnv",
            description=f"ScienceWorld {topic}: {title}. The seed picks a variation of the split (train/dev/test).",
            max_turns=SCIENCEWORLD_LONG.get(task, SCIENCEWORLD_TURNS),
            reward_range=(-2.0, 1.0),
            tags=("text-world", "scienceworld", "text-adventure"),
            expert=f"{_PKG}.scienceworld:expert",
            requires=("module:scienceworld", *_REQUIRES),
            kwargs={"task": task},
        )
    for game, what in TWX_GAMES.items():
        register(
            f"twx/{game}-v0",
            f"{_PKG}.twx:TextWorldExpressEnv",
            description=f"TextWorldExpress {what}. The game is generated from the seed.",
            max_turns=TWX_TURNS,
            reward_range=(-1.0, 1.0),
            tags=("text-world", "twx", "text-adventure"),
            expert=f"{_PKG}.twx:expert",
            requires=("module:textworld_express", *_REQUIRES),
            kwargs={"game": game},
        )
    register(
        "textworld/custom-v0",
        f"{_PKG}.tw_games:TextWorldEnv",
        description="TextWorld: a text adventure generated with tw-make from the seed (world_size rooms, "
        "nb_objects objects, a quest of quest_length actions).",
        max_turns=TEXTWORLD_TURNS,
        reward_range=(-1.0, 1.0),
        tags=("text-world", "textworld", "text-adventure"),
        expert=f"{_PKG}.tw_games:expert",
        requires=("module:textworld", "module:jericho"),
    )
