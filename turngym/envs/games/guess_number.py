"""GuessNumber: find a secret integer in [low, high]; after each guess the env says higher or lower.

Reward 1 for the right guess, 0 otherwise (the outcome reward); ``info["success"]`` at the end.
``terse=True`` words the game for task models trained from scratch: the prompt ``Guess 1-16.`` and
one-word hints (``higher``, ``lower``, ``right``), about a third of the tokens per episode; the game,
its actions and rewards are the same.
The reference game: the other games follow its shape (env class, ``instance_state``, ``expert``).
"""

from __future__ import annotations

from typing import Any

from turngym.core.actions import BracketedMove
from turngym.core.env import TurnEnv
from turngym.core.errors import ActionError
from turngym.core.types import Action, Observation

#: ranges with fewer numbers than this accept exactly their numbers (the action pattern lists them)
SMALL_RANGE = 64


class GuessNumberEnv(TurnEnv):
    #: the whole state is picklable attributes: TurnEnv.snapshot() saves them
    snapshot_unsupported = None

    def __init__(self, *, low: int = 1, high: int = 100, terse: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if low >= high:
            raise ValueError(f"GuessNumber needs low < high, got low={low}, high={high}")
        self.low, self.high = low, high
        example = f"[{(low + high) // 2}]"
        if high - low < SMALL_RANGE:  # list the numbers, so constrained sampling picks only legal guesses
            self.action_format = BracketedMove(choices=[str(n) for n in range(low, high + 1)], example=example, what="guess")
        else:
            self.action_format = BracketedMove(move_pattern=r"-?\d+", example=example, what="guess")
        self.description = (
            f"I am thinking of a whole number from {low} to {high}. Guess it: after each guess I say "
            "whether the secret is higher or lower."
        )
        self.secret = low
        self.terse = terse
        self._prompt = f"Guess {low}-{high}." if terse else f"{self.description} {self.action_format.describe()}"

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.secret = int(self.np_random.integers(self.low, self.high + 1))
        return Observation.text(self._prompt), {}

    def step(self, action: Action):
        guess = int(self.action_format.parse(action))
        if not self.low <= guess <= self.high:
            raise ActionError(f"{guess} is outside {self.low}..{self.high}: guess a number in that range")
        if guess == self.secret:
            return Observation.text("right" if self.terse else f"{guess} is right!"), 1.0, True, False, {"success": True}
        hint = "higher" if self.secret > guess else "lower"
        return Observation.text(hint if self.terse else f"The secret is {hint} than {guess}."), 0.0, False, False, {}

    def instance_state(self) -> Any:
        return {"low": self.low, "high": self.high, "secret": self.secret}

    def legal_actions(self) -> list[str]:
        return [f"[{n}]" for n in range(self.low, self.high + 1)]


def expert(env: GuessNumberEnv):
    """Binary search from the hints alone (no peeking at the secret)."""
    lo, hi = env.low, env.high
    last = None

    def policy(obs: Observation) -> str:
        nonlocal lo, hi, last
        text = obs.last_text
        if last is not None:
            if "higher" in text:
                lo = last + 1
            elif "lower" in text:
                hi = last - 1
        last = (lo + hi) // 2
        return f"[{last}]"

    return policy
