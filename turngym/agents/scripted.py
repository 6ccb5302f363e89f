"""Agents that need no model: the env's scripted expert, and a random agent."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np

from turngym.agents.base import Agent, Policy
from turngym.core.errors import ConfigError
from turngym.core.registry import env_info, load_object
from turngym.core.types import Action, Observation


class _CallablePolicy(Policy):
    def __init__(self, fn: Callable[[Observation], Any]) -> None:
        self._fn = fn

    async def act(self, observation: Observation) -> Action:
        out = self._fn(observation)
        if inspect.isawaitable(out):
            out = await out
        return out


class ScriptedAgent(Agent):
    """Plays the env's registered expert (``register(..., expert="module:function")``).

    The expert function takes the unwrapped env and returns a policy ``Observation -> Action``
    (sync or async). Experts may read the env's state: they are oracles for tests and baselines.
    """

    name = "scripted"

    @classmethod
    def from_spec(cls, rest: str = "", **options: Any) -> ScriptedAgent:
        return cls()

    async def start(self, env: gymnasium.Env, *, seed: int | None) -> Policy:
        spec = env.spec
        if spec is None and hasattr(env.unwrapped, "ws_url"):  # a remote/<url> env (turngym.serve.remote)
            raise ConfigError(
                "the scripted agent plays an env's expert, which reads the env's state in-process; a remote env has "
                "none here: evaluate --agent scripted where the env runs (the server's id), or use --agent random "
                "or an LLM agent"
            )
        if spec is None:
            raise ConfigError("the scripted agent needs a registered env (env.spec is None)")
        info = env_info(spec.id)
        if info.expert is None:
            raise ConfigError(f"{spec.id} has no scripted expert: use --agent random or an LLM agent")
        return _CallablePolicy(load_object(info.expert)(env.unwrapped))


class RandomAgent(Agent):
    """Picks uniformly among ``env.legal_actions()`` where the env lists them, else samples the
    action space. Seeded per episode, so runs repeat."""

    name = "random"

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed
        self._branches = 0  # continuations started (tree rollouts): each gets a seed of its own

    @classmethod
    def from_spec(cls, rest: str = "", **options: Any) -> RandomAgent:
        return cls(seed=int(rest) if rest else int(options.get("seed", 0)))

    async def start(self, env: gymnasium.Env, *, seed: int | None) -> Policy:
        rng = np.random.default_rng([self.seed, seed if seed is not None else 0])
        unwrapped = env.unwrapped
        space = env.action_space
        space.seed(int(rng.integers(2**31)))

        def act(observation: Observation) -> Action:
            legal = unwrapped.legal_actions() if hasattr(unwrapped, "legal_actions") else None
            if legal:
                return legal[int(rng.integers(len(legal)))]
            return space.sample()

        return _CallablePolicy(act)

    async def branch(self, env: gymnasium.Env, *, seed: int | None, parent: Policy, turn: int) -> Policy:
        """A random policy of its own from turn ``turn`` on (a random policy keeps no state but its generator,
        so a continuation is a fresh one, seeded apart from the parent's)."""
        self._branches += 1
        branch_seed = int(np.random.default_rng([self.seed, 1, self._branches]).integers(2**31))
        return await RandomAgent(seed=branch_seed).start(env, seed=seed)
