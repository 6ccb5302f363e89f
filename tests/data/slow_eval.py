"""``turngym eval`` with one extra, slow test env registered first (for the kill -9 resume test).

    python tests/data/slow_eval.py eval --suite tests/data/slow_suite.yaml --agent random --out DIR
"""

import asyncio
import sys

import turngym
from turngym.core.actions import BracketedMove
from turngym.core.types import Observation


class SlowCount(turngym.TurnEnv):
    """Say [go] three times; each step waits 5 ms (an env that does I/O)."""

    action_format = BracketedMove(choices=["go"], example="[go]")

    async def areset(self, *, seed=None, options=None):
        await super().areset(seed=seed)
        self.n = 0
        return Observation.text(f"instance {seed}: say [go] three times"), {}

    async def astep(self, action):
        self.action_format.parse(action)
        await asyncio.sleep(0.005)
        self.n += 1
        done = self.n >= 3
        return Observation.text(str(self.n)), 1.0 if done else 0.0, done, False, ({"success": True} if done else {})

    def legal_actions(self):
        return ["[go]"]


turngym.register("slowtest/SlowCount-v0", SlowCount, max_turns=5)

if __name__ == "__main__":
    from turngym.cli.app import main

    sys.argv[0] = "turngym"
    main()
