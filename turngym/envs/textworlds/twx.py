"""TextWorldExpress (Jansen and Côté 2022): fast text games generated from a seed, ``twx/<game>-v0``.

Games: CookingWorld (``cookingworld``), TextWorld Commonsense (``twc``), Coin Collector (``coin``),
Map Reader (``mapreader``), Arithmetic (``arithmetic``), Sorting (``sorting``), Simon Says
(``simonsays``) and Peck(ing order) (``peckingorder``). ``params`` sets the game's generation options
(``"numLocations=5,includeDoors=0"`` or a dict; the game's defaults where empty).

The engine keeps the game seeds in three disjoint folds (train 0..999, dev 10000.., test 20000..); the
env's seed picks one of ``split``'s uniformly (the env's own RNG), and the engine generates the game
from it. The first observation is the task and the room; each command (``[move east]``) is answered
with the engine's text. Reward: the change of the game's score (0..1). The episode ends when the game
reports success or failure; ``info["success"]`` is the game's success.

The expert plays the game's gold path (the engine generates it with the game).
"""

from __future__ import annotations

import json
from typing import Any

from turngym.envs.textworlds.base import JavaTextWorld, Outcome, Split, gold_path_policy

ENTRY = "textworldexpress.runtime.PythonInterface"
GAMES = ("cookingworld", "twc", "coin", "mapreader", "arithmetic", "sorting", "simonsays", "peckingorder")


def params_string(params: str | dict[str, Any]) -> str:
    """TWX's ``"key=value,key=value"`` form of ``params``, keys sorted."""
    if isinstance(params, dict):
        return ",".join(f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in sorted(params.items()))
    return ",".join(sorted(p.strip() for p in params.split(",") if p.strip()))


class TextWorldExpressEnv(JavaTextWorld):
    def __init__(self, *, game: str, split: Split = "train", params: str | dict[str, Any] = "", **kwargs: Any) -> None:
        if game not in GAMES:
            raise ValueError(f"TextWorldExpress has no game {game!r}; its games: {', '.join(GAMES)}")
        self.game, self.params = game, params_string(params)
        self._numbers: list[int] | None = None
        self._gold: list[str] = []
        self._valid: list[str] = []
        super().__init__(split=split, **kwargs)

    def engine_spec(self) -> dict[str, Any]:
        from textworld_express.constants import BASEPATH, JAR_PATH

        return {"name": f"TextWorldExpress ({self.game})", "jar": JAR_PATH, "cwd": BASEPATH, "entry": ENTRY}

    def instance_numbers(self) -> list[int]:
        if self._numbers is None:
            self._load_game()
            server = self.engine.server
            folds = {"train": server.getSeedsTrain, "dev": server.getSeedsDev, "test": server.getSeedsTest}
            self._numbers = sorted(int(s) for s in folds[self.split]())
        return self._numbers

    def _load_game(self) -> None:
        error = self.engine.server.load(self.game, self.params)
        if error:
            raise ValueError(f"TextWorldExpress {self.game} does not take params={self.params!r}: {error}")

    def instance_for(self, number: int) -> dict[str, Any]:
        return {"game": self.game, "params": self.params, "split": self.split, "seed": number}

    def load(self, instance: dict[str, Any]) -> str:
        server = self.engine.server
        self._load_game()  # a fresh JVM (after a crash) has no game loaded
        reply = json.loads(server.generateNewGameJSON(instance["seed"], self.split, True))
        self._gold = [str(a) for a in server.getGoldActionSequence()]
        self._valid = list(reply["validActions"])
        return f"{server.getTaskDescription().strip()}\n\n{reply['observation'].strip()}"

    def act(self, command: str) -> Outcome:
        reply = json.loads(self.engine.server.stepJSON(command))
        self._valid = list(reply["validActions"])
        score = float(reply["score"])
        success = bool(reply["tasksuccess"])
        done = success or bool(reply["taskfailure"]) or score >= 1.0
        return Outcome(text=reply["observation"].strip(), score=score, done=done, success=success or score >= 1.0)

    def gold_actions(self) -> list[str]:
        return list(self._gold)

    def valid_commands(self) -> list[str]:
        return sorted(self._valid)


def expert(env: TextWorldExpressEnv):
    """The gold path the engine generated with the game, one command a turn."""
    return gold_path_policy(env.gold_actions())
