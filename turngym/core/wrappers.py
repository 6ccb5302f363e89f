"""Wrappers that work on both the sync and the async API of a ``TurnEnv``.

A ``TurnWrapper`` subclass transforms results in ``on_reset`` / ``on_step``; the four entry points
(``reset``, ``step``, ``areset``, ``astep``) all go through them, so one wrapper serves both APIs.
"""

from __future__ import annotations

from typing import Any

import gymnasium

from turngym.core.env import ResetResult, StepResult
from turngym.core.types import Action, Observation


class TurnWrapper(gymnasium.Wrapper[Observation, Action, Observation, Action]):
    """Base of turngym wrappers: override ``on_reset`` and ``on_step``."""

    def on_reset(self, result: ResetResult) -> ResetResult:
        return result

    def on_step(self, result: StepResult) -> StepResult:
        return result

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        return self.on_reset(self.env.reset(seed=seed, options=options))

    def step(self, action: Action) -> StepResult:
        return self.on_step(self.env.step(action))

    async def areset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        return self.on_reset(await areset(self.env, seed=seed, options=options))

    async def astep(self, action: Action) -> StepResult:
        return self.on_step(await astep(self.env, action))

    async def aclose(self) -> None:
        inner = getattr(self.env, "aclose", None)
        if inner is not None:
            await inner()
        else:
            self.env.close()


class TurnLimit(TurnWrapper):
    """Truncate the episode after ``max_turns`` steps (Gymnasium's ``TimeLimit``, for both APIs)."""

    def __init__(self, env: gymnasium.Env, max_turns: int) -> None:
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        super().__init__(env)
        self.max_turns = max_turns
        self._turns = 0

    def on_reset(self, result: ResetResult) -> ResetResult:
        self._turns = 0
        return result

    def on_step(self, result: StepResult) -> StepResult:
        self._turns += 1
        obs, reward, terminated, truncated, info = result
        if self._turns >= self.max_turns and not terminated:
            truncated = True
            info.setdefault("success", False)
        return obs, reward, terminated, truncated, info


async def areset(env: gymnasium.Env, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
    """``env.areset`` where the env (or its outermost wrapper) has it, else ``env.reset``."""
    fn = getattr(env, "areset", None)
    if fn is not None:
        return await fn(seed=seed, options=options)
    return env.reset(seed=seed, options=options)


async def astep(env: gymnasium.Env, action: Action) -> StepResult:
    """``env.astep`` where the env (or its outermost wrapper) has it, else ``env.step``."""
    fn = getattr(env, "astep", None)
    if fn is not None:
        return await fn(action)
    return env.step(action)
