"""Gymnasium spaces for chat observations and text actions, so Gymnasium's checker and wrappers work."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.spaces import Space

from turngym.core.types import Action, Message, Observation


class ObservationSpace(Space[Observation]):
    """Every valid ``turngym.Observation``."""

    def __init__(self, seed: int | np.random.Generator | None = None) -> None:
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def contains(self, x: Any) -> bool:
        return isinstance(x, Observation)

    def sample(self, mask: Any = None, probability: Any = None) -> Observation:
        n = int(self.np_random.integers(1, 20))
        text = "".join(self.np_random.choice(list("abcdefghij ")) for _ in range(n))
        return Observation.text(text)

    def __repr__(self) -> str:
        return "ObservationSpace()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObservationSpace)


class ActionSpace(Space[Action]):
    """Replies an agent may send: text, or an assistant message. ``sample`` asks the env's action format."""

    def __init__(self, action_format: Any, seed: int | np.random.Generator | None = None) -> None:
        super().__init__(shape=None, dtype=None, seed=seed)
        self.action_format = action_format

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) or (isinstance(x, Message) and x.role == "assistant")

    def sample(self, mask: Any = None, probability: Any = None) -> Action:
        return self.action_format.sample(self.np_random)

    def __repr__(self) -> str:
        return f"ActionSpace({type(self.action_format).__name__})"

    def __eq__(self, other: object) -> bool:
        """Equal action formats (same class, same settings): each env of ``gymnasium.make_vec`` has its own
        format object, and Gymnasium's vector envs require their sub-envs' spaces to be equal."""
        if not isinstance(other, ActionSpace):
            return False
        a, b = self.action_format, other.action_format
        return a is b or (type(a) is type(b) and vars(a) == vars(b))
