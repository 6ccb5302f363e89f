"""Wait: an env whose steps take a fixed time, for measuring runners and tests of rollout workers.

Each step waits ``step_seconds`` (``asyncio.sleep``: an I/O-bound env, as a remote API, a sandbox or a browser
round trip is; default 50 ms) and the episode lasts ``turns`` turns. The seed draws a code that the agent
is asked to repeat; a reply that holds it earns 1/turns, so an episode's return says how many turns the
agent got right and transcripts differ per seed. Any reply is a legal move.
"""

from __future__ import annotations

import asyncio
from typing import Any

from turngym.core.env import TurnEnv
from turngym.core.types import Action, Observation


class WaitEnv(TurnEnv):
    snapshot_unsupported = None
    accepts_any_text = True

    def __init__(self, *, step_seconds: float = 0.05, turns: int = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if step_seconds < 0:
            raise ValueError(f"Wait needs step_seconds >= 0, got {step_seconds}")
        if turns < 1:
            raise ValueError(f"Wait needs turns >= 1, got {turns}")
        self.step_seconds, self.turns = float(step_seconds), int(turns)
        self.description = f"Repeat the code you are shown, {turns} times; each step takes {step_seconds:g} s."
        self.code, self.turn = 0, 0

    async def areset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        await super().areset(seed=seed)
        self.code, self.turn = int(self.np_random.integers(1000, 10000)), 0
        await asyncio.sleep(self.step_seconds)
        return Observation.text(f"Turn 1 of {self.turns}: repeat {self.code}."), {}

    async def astep(self, action: Action):
        text = action if isinstance(action, str) else str(action.text or "")
        await asyncio.sleep(self.step_seconds)
        self.turn += 1
        right = str(self.code) in text
        reward, said = (1.0 / self.turns, "Right.") if right else (0.0, "Wrong.")
        if self.turn >= self.turns:
            return Observation.text(f"{said} Done."), reward, True, False, {"success": True}
        obs = Observation.text(f"{said} Turn {self.turn + 1} of {self.turns}: repeat {self.code}.")
        return obs, reward, False, False, {}

    def instance_state(self) -> Any:
        return {"code": self.code, "turns": self.turns}

    def legal_actions(self) -> list[str]:
        return [str(self.code), "wait"]


def expert(env: WaitEnv):
    """Repeats the code."""
    return lambda obs: str(env.code)
