"""A third-party env package: ``register_envs`` is its ``turngym.envs`` entry point."""

from typing import Any

import turngym
from turngym.core.actions import BracketedMove


class ParityEnv(turngym.TurnEnv):
    """A hidden number from 1 to 1000 (seeded): call its parity, [even] or [odd]."""

    action_format = BracketedMove(choices=["even", "odd"], example="[even]")

    def reset(self, *, seed: Any = None, options: Any = None):
        super().reset(seed=seed)
        self.number = int(self.np_random.integers(1, 1001))
        return turngym.Observation.text("Is my hidden number [even] or [odd]?"), {}

    def step(self, action):
        call = self.action_format.parse(action)
        win = call == ("even" if self.number % 2 == 0 else "odd")
        return turngym.Observation.text(f"It was {self.number}."), float(win), True, False, {"success": win}

    def instance_state(self):
        return self.number

    def legal_actions(self):
        return ["[even]", "[odd]"]


def register_envs() -> None:
    turngym.register(
        "fixtureq7z/Parity-v0",
        "tgfixture_q7z:ParityEnv",
        description="Call the parity of a hidden number (a plugin-test fixture).",
        max_turns=1,
        reward_range=(0.0, 1.0),
    )
