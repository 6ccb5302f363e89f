"""The agent interface the rollout runner drives.

An ``Agent`` is long-lived (it may hold a model or a server connection); for each episode it
``start``s a ``Policy`` that holds that episode's state (a conversation, a search interval) and
answers observations with actions. When the episode ends the runner calls ``Policy.finish`` so an
LLM policy can write its token stream (tokens, mask, logprobs, turn spans) into the ``Episode``.

    agent = make_agent("scripted")
    policy = await agent.start(env, seed=3)
    action = await policy.act(observation)
    ...
    policy.finish(episode)
    await agent.aclose()

Agent specs (``turngym eval --agent SPEC``): ``scripted``, ``random``, and the LLM backends
registered in ``AGENT_FACTORIES`` (``hf:PATH``, ``vllm:PATH``, ``openai:URL#MODEL``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import gymnasium

from turngym.core.errors import ConfigError, did_you_mean
from turngym.core.registry import load_object
from turngym.core.types import Action, Episode, Observation


class Policy(ABC):
    """One episode's decision maker."""

    @abstractmethod
    async def act(self, observation: Observation) -> Action:
        """The reply to the env's latest observation."""

    def finish(self, episode: Episode) -> None:  # noqa: B027 - optional hook
        """Write what the policy recorded (token stream, spans) into ``episode``. Default: nothing."""


class Agent(ABC):
    """Makes a ``Policy`` per episode. ``trainable`` agents record token streams."""

    name: str = "agent"
    trainable: bool = False

    @abstractmethod
    async def start(self, env: gymnasium.Env, *, seed: int | None) -> Policy:
        """A fresh policy for one episode of ``env`` (already reset with ``seed``)."""

    async def branch(self, env: gymnasium.Env, *, seed: int | None, parent: Policy, turn: int) -> Policy:
        """A policy that continues ``parent``'s episode from turn ``turn`` in ``env`` (restored from the
        episode's snapshot before that turn): one continuation of a tree rollout. Agents whose policies hold
        state (a conversation) implement it; the default refuses."""
        raise NotImplementedError(
            f"the {self.name} agent cannot continue an episode from a branch point (tree rollouts): use an LLM "
            "agent (hf:, vllm:) or the random agent"
        )

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release models, servers, processes."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "trainable": self.trainable}


#: spec prefix -> "module:factory"; factory(rest_of_spec: str, **options) -> Agent
AGENT_FACTORIES: dict[str, str] = {
    "scripted": "turngym.agents.scripted:ScriptedAgent.from_spec",
    "random": "turngym.agents.scripted:RandomAgent.from_spec",
    "hf": "turngym.agents.hf:HFAgent.from_spec",
    "vllm": "turngym.agents.vllm:VLLMAgent.from_spec",
    "openai": "turngym.agents.openai:OpenAIAgent.from_spec",
}


def make_agent(spec: str, **options: Any) -> Agent:
    """Build an agent from a spec such as ``"scripted"``, ``"random"`` or ``"hf:/models/tiny"``."""
    kind, _, rest = spec.partition(":")
    factory = AGENT_FACTORIES.get(kind)
    if factory is None:
        raise ConfigError(
            f"unknown agent spec {spec!r}: unknown kind {kind!r}.{did_you_mean(kind, list(AGENT_FACTORIES))} "
            f"A spec starts with one of {', '.join(sorted(AGENT_FACTORIES))}: e.g. 'scripted', 'random', 'hf:PATH' "
            "(a local model directory), 'vllm:PATH', 'openai:http://127.0.0.1:8000/v1#MODEL'"
        )
    return load_object(factory)(rest, **options)
