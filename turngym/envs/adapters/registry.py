"""Registration of the adapter envs: every TextArena game as ``textarena/<TextArena id>``.

The list of games, their player counts and why some cannot run here is a data file,
``textarena_games.json``, written by ``scripts/data/probe_textarena.py`` (which plays
each game), so registering imports nothing of TextArena. One turngym id per TextArena id, difficulty
variants included (``textarena/Sudoku-v0-hard``); TextArena's ``-raw`` and ``-train`` twins are not
registered: they are the same game behind other TextArena observation wrappers, and the adapter
formats observations itself. A ``/`` in a TextArena id becomes ``-``.
"""

from __future__ import annotations

import json
from pathlib import Path

from turngym.core.registry import register

DATA = Path(__file__).with_name("textarena_games.json")
ENTRY_POINT = "turngym.envs.adapters.textarena:TextArenaEnv"
#: learner turns before the episode is truncated, for games without a limit of their own
MAX_TURNS = 200
#: games found unusable after the probe wrote the data file (a reason there wins: the probe played them)
UNAVAILABLE = {
    "Sokoban-v0-medium": (
        "TextArena builds this game too slowly (its room generator searches up to 300,000 states per try and "
        "retries, 20 s to minutes per reset): use textarena/Sokoban-v0"
    ),
    "Sudoku-v0-hard": (
        "TextArena builds this game too slowly (its generator removes cells while the solution stays unique: "
        "1 s to minutes per reset, by seed): use textarena/Sudoku-v0-medium"
    ),
}


def turngym_id(game: str) -> str:
    return "textarena/" + game.replace("/", "-")


def register_adapters() -> None:
    if not DATA.exists():
        return
    data = json.loads(DATA.read_text())
    for entry in data["games"]:
        game, players = entry["id"], entry["num_players"]
        description = f"TextArena {game}" + (f": {entry['description']}" if entry["description"] else "")
        tags: tuple[str, ...] = ("textarena", "game")
        if players is not None:
            tags += ("single-player" if players == 1 else "multi-player",)
        if players and players > 1:
            description += f" (learner = player 0 of {players}; `opponent` plays the others)"
        register(
            turngym_id(game),
            ENTRY_POINT,
            description=description,
            max_turns=MAX_TURNS,
            tags=tags,
            requires=("module:textarena", "module:nltk"),
            unavailable=entry["unavailable"] or UNAVAILABLE.get(game),
            kwargs={"game": game, "num_players": players or 1},
        )
