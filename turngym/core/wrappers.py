"""Wrappers that work on both the sync and the async API of a ``TurnEnv``.

A ``TurnWrapper`` subclass transforms results in ``on_reset`` / ``on_step``; the four entry points
(``reset``, ``step``, ``areset``, ``astep``) all go through them, so one wrapper serves both APIs.

Snapshots: ``snapshot()``/``restore()`` on a wrapper save the env's state and each turngym wrapper's
own (``snapshot_state``/``restore_state``; ``TurnLimit``'s turn count), so ``make``'s envs snapshot whole.

``apply_turn_limit`` is the last step of ``gymnasium.make`` for every turngym id: it puts the
``TurnLimit`` on, with the registered limit, ``max_turns=N`` or Gymnasium's ``max_episode_steps=N``.
"""

from __future__ import annotations

from typing import Any

import gymnasium

from turngym.core.env import ResetResult, StepResult, TurnEnv, pack_snapshot, restore_snapshot
from turngym.core.errors import EpisodeOver, SnapshotError, SnapshotUnsupported
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

    # -- snapshots: the env's state and every turngym wrapper's own ------------------------------
    def snapshot(self) -> bytes:
        """``TurnEnv.snapshot`` of the env inside, with the state of this wrapper and those under it."""
        return pack_snapshot(self.unwrapped, self._turn_wrappers())

    def restore(self, data: bytes) -> None:
        """``TurnEnv.restore`` of the env inside, with the state of this wrapper and those under it."""
        restore_snapshot(self.unwrapped, self._turn_wrappers(), data)

    def snapshot_state(self) -> Any:
        """This wrapper's own episode state for ``snapshot`` (picklable); a wrapper that counts overrides
        this and ``restore_state``."""
        return None

    def restore_state(self, state: Any) -> None:
        """Put back what ``snapshot_state`` returned."""

    def _turn_wrappers(self) -> list[TurnWrapper]:
        wrappers: list[TurnWrapper] = []
        env: gymnasium.Env = self
        while isinstance(env, TurnWrapper):
            wrappers.append(env)
            env = env.env
        if env is not env.unwrapped:
            raise SnapshotUnsupported(
                f"{type(env).__name__} sits under {type(self).__name__}: a snapshot saves only the state of "
                "turngym wrappers (TurnWrapper), so put other gymnasium wrappers outside them"
            )
        return wrappers


class TurnLimit(TurnWrapper, gymnasium.utils.RecordConstructorArgs):
    """Truncate the episode after ``max_turns`` steps (Gymnasium's ``TimeLimit``, for both APIs).
    It records its argument, so ``gymnasium.make(env.spec)`` makes the same env again. A step after the
    truncation (before ``reset``) raises ``EpisodeOver``, as the env itself does after ``terminated``."""

    def __init__(self, env: gymnasium.Env, max_turns: int) -> None:
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        gymnasium.utils.RecordConstructorArgs.__init__(self, max_turns=max_turns)
        super().__init__(env)
        self.max_turns = max_turns
        self._turns = 0
        self._truncated = False

    def step(self, action: Action) -> StepResult:
        self._check_open()
        return super().step(action)

    async def astep(self, action: Action) -> StepResult:
        self._check_open()
        return await super().astep(action)

    def _check_open(self) -> None:
        if self._truncated:
            raise EpisodeOver(
                f"step() was called after the episode was truncated at its turn limit (TurnLimit max_turns="
                f"{self.max_turns}): a finished episode takes no more actions and pays no reward; call reset() "
                "to start the next episode (or make the env with a larger max_turns=N)"
            )

    def snapshot_state(self) -> Any:
        return {"max_turns": self.max_turns, "turns": self._turns, "truncated": self._truncated}

    def restore_state(self, state: Any) -> None:
        if state["max_turns"] != self.max_turns:
            raise SnapshotError(
                f"the snapshot was taken under TurnLimit(max_turns={state['max_turns']}), this env has "
                f"max_turns={self.max_turns}: restore it into an env made with the same max_turns"
            )
        self._turns, self._truncated = state["turns"], state["truncated"]

    def on_reset(self, result: ResetResult) -> ResetResult:
        self._turns = 0
        self._truncated = False
        return result

    def on_step(self, result: StepResult) -> StepResult:
        self._turns += 1
        obs, reward, terminated, truncated, info = result
        if self._turns >= self.max_turns and not terminated:
            truncated = True
            info.setdefault("success", False)
        self._truncated = bool(truncated) and not terminated
        return obs, reward, terminated, truncated, info


def apply_turn_limit(env: gymnasium.Env, *, max_turns: int | None) -> gymnasium.Env:
    """``env`` with its turn limit: ``max_turns`` as registered, unless the ``make`` call asked otherwise.

    ``gymnasium.make(id, max_episode_steps=N)`` has just wrapped the env in Gymnasium's ``TimeLimit``:
    it is replaced by ``TurnLimit(N)`` (which serves the async API too). ``make(id, max_turns=N)`` is
    read from the env's spec kwargs, where gymnasium recorded it; ``None`` or ``0`` means no limit.
    """
    requested = (env.unwrapped.spec.kwargs if env.unwrapped.spec is not None else {}).get("max_turns", _UNSET)
    if isinstance(env, gymnasium.wrappers.TimeLimit):
        steps = env._max_episode_steps
        if requested is not _UNSET and requested != steps:
            raise ValueError(
                f"make() got max_episode_steps={steps} and max_turns={requested}: both set the turn limit; pass one"
            )
        env, requested = env.env, steps
    limit = max_turns if requested is _UNSET else requested
    return TurnLimit(env, limit) if limit else env


_UNSET: Any = object()


async def aclose(env: gymnasium.Env) -> None:
    """Close ``env`` from inside an event loop: through ``aclose`` where the env implements it (its sync
    ``close`` would need a private event loop, not allowed inside a running one), else through ``close``
    (a sync env's own ``close`` releases its resources; ``TurnEnv.aclose`` is a no-op)."""
    unwrapped = env.unwrapped
    if isinstance(unwrapped, TurnEnv) and type(unwrapped).aclose is not TurnEnv.aclose:
        fn = env.aclose if hasattr(env, "aclose") else unwrapped.aclose
        await fn()
    else:
        env.close()


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
