"""TextWorld (Côté et al. 2018): text adventures generated with ``tw-make``, ``textworld/custom-v0``.

The seed draws the game's seed (the env's own RNG); ``tw-make custom`` generates the game from it
(``world_size`` rooms, ``nb_objects`` objects, a quest of ``quest_length`` actions) and compiles it
with the Inform 7 compiler that the PyPI wheel bundles, offline. Games are cached by their options
and seed under ``$XDG_CACHE_HOME/turngym/textworld`` (generating one takes seconds), and played
in-process by Jericho's Z-machine: no process outlives the env.

The first observation is the quest and the first room; each command (``[open chest]``) is answered
with the game's text. Reward: the change of the score over the game's maximum score (1 in all for a
won game). The episode ends when the game is won or lost; ``info["success"]`` is the win. The
expert plays the game's walkthrough.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

from turngym.core.actions import BracketedMove
from turngym.core.env import TurnEnv
from turngym.core.errors import ActionError
from turngym.core.types import Action, Observation
from turngym.envs.textworlds.base import gold_path_policy

SEEDS = 2**31 - 1
#: seconds one ``tw-make`` may take
MAKE_TIMEOUT = 600


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "turngym" / "textworld"


class TextWorldEnv(TurnEnv):
    snapshot_unsupported = "the game's state lives in Jericho's Z-machine, which this env does not save"
    action_format = BracketedMove(example="[look]", what="command")

    def __init__(self, *, world_size: int = 5, nb_objects: int = 10, quest_length: int = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, value in (("world_size", world_size), ("nb_objects", nb_objects), ("quest_length", quest_length)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TextWorld {name}={value!r} must be a positive integer")
        self.options = {"world_size": world_size, "nb_objects": nb_objects, "quest_length": quest_length}
        self.instance: dict[str, Any] = {}
        self._game: Any = None
        self._state: Any = None
        self._score = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.instance = {**self.options, "seed": int(self.np_random.integers(SEEDS))}
        self._start(make_game(self.instance))
        self._state, self._score = self._game.reset(), 0
        text = f"{self._state.objective.strip()}\n\n{_room(self._state.feedback)}"
        return Observation.text(text), {}

    def _start(self, path: Path) -> None:
        import textworld

        if self._game is not None:
            self._game.close()
        infos = textworld.EnvInfos(
            admissible_commands=True, objective=True, won=True, lost=True, max_score=True, extras=["walkthrough"]
        )
        with warnings.catch_warnings():  # Jericho knows only published games; TextWorld keeps the score itself
            warnings.filterwarnings("ignore", message=".*is not fully supported")
            self._game = textworld.start(str(path), request_infos=infos)

    def step(self, action: Action):
        command = " ".join(self.action_format.parse(action).split())
        if not command:
            raise ActionError("the command is empty: write one in the brackets, for example [look]")
        self._state, score, done = self._game.step(command)
        reward, self._score = (score - self._score) / max(1, self._state.max_score), score
        info: dict[str, Any] = {"score": score / max(1, self._state.max_score)}
        if done:
            info["success"] = bool(self._state.won)
        return Observation.text(self._state.feedback.strip()), reward, bool(done), False, info

    def instance_state(self) -> Any:
        return self.instance

    def legal_actions(self) -> list[str] | None:
        commands = self._state.admissible_commands if self._state is not None else None
        return [f"[{c}]" for c in commands] if commands else None

    def walkthrough(self) -> list[str]:
        return list(self._state["extra.walkthrough"] or [])

    def close(self) -> None:
        if self._game is not None:
            self._game.close()
            self._game = None
        super().close()


def _room(feedback: str) -> str:
    """The game's first text less its banner (the ASCII-art title before the first room heading)."""
    at = feedback.find("-= ")
    return feedback[at:].strip() if at >= 0 else feedback.strip()


def make_game(instance: dict[str, Any]) -> Path:
    """The compiled game of ``instance`` (options and seed), generated with ``tw-make`` unless cached."""
    key = hashlib.sha256(json.dumps(instance, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"{key}.z8"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{key}-{os.getpid()}.z8")
    cmd = [
        str(Path(sys.executable).with_name("tw-make")),
        "custom",
        "--world-size",
        str(instance["world_size"]),
        "--nb-objects",
        str(instance["nb_objects"]),
        "--quest-length",
        str(instance["quest_length"]),
        "--seed",
        str(instance["seed"]),
        "--output",
        str(tmp),
        "-f",
        "--silent",
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=MAKE_TIMEOUT, check=False)
    except FileNotFoundError:
        raise RuntimeError(
            f"tw-make is not beside {sys.executable}: install TextWorld (pip install 'turngym[textworlds]')"
        ) from None
    if done.returncode != 0 or not tmp.exists():
        raise RuntimeError(
            f"tw-make could not make the game {instance}: {(done.stderr or done.stdout).strip()[-400:]}; try other "
            "options (a quest longer than the world allows fails)"
        )
    for side in tmp.parent.glob(f"{tmp.stem}.*"):  # the game and its .json (the walkthrough), then the name
        if side.suffix != ".z8":
            side.replace(path.with_suffix(side.suffix))
    tmp.replace(path)
    return path


def expert(env: TextWorldEnv):
    """The game's walkthrough, one command a turn."""
    return gold_path_policy(env.walkthrough())
