"""Partners from agent specs: a model that plays the other side of a dialogue env (``turngym.core.partner``).

    partner = make_partner("hf:.cache/tiny-models/tiny", temperature=0.0, max_new_tokens=24)
    env = turngym.make("turngym/TwentyQuestions-v0", oracle=partner)

An ``AgentPartner`` wraps an LLM agent (``hf:``, ``vllm:``, ``openai:``): each call starts a fresh policy whose
system prompt is the partner's system message and whose first observation is the rest of the dialogue, and
returns the reply's text. Calls share the agent (one model; the hf backend batches concurrent calls).
Partners sample with their agent's options; give ``temperature=0`` where runs must repeat.

``PartnerPool`` is how the layer that makes envs resolves partner specs in env kwargs (the options named in
``PARTNER_OPTIONS``): ``run_episodes`` builds one partner per distinct spec before the first episode (a spec
that does not build stops the run there) and closes them at the end. A spec is a string (``"hf:PATH"``) or a
mapping ``{"spec": "hf:PATH", **agent options}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from turngym.agents.base import AGENT_FACTORIES, Agent, make_agent
from turngym.core.errors import ConfigError
from turngym.core.partner import PARTNER_OPTIONS, RULE, is_partner_spec
from turngym.core.types import Message, Observation, action_text

__all__ = ["AgentPartner", "PartnerPool", "make_partner", "partner_spec"]

#: agent kinds that can play a partner: the LLM ones (a scripted or random agent has no dialogue to offer)
PARTNER_KINDS = tuple(k for k in AGENT_FACTORIES if k not in ("scripted", "random"))


@dataclass(frozen=True)
class _Seat:
    """What an agent's ``start`` reads of an env, for a partner: its system prompt, no action format."""

    description: str
    action_format: None = None
    spec: None = None

    @property
    def unwrapped(self) -> _Seat:
        return self


class AgentPartner:
    """A ``Partner`` played by an LLM agent; see the module docstring."""

    def __init__(self, agent: Agent, *, name: str | None = None) -> None:
        self.agent = agent
        self.name = name or agent.name

    async def __call__(self, messages: list[Message]) -> str:
        system = "\n\n".join(m.text for m in messages if m.role == "system")
        rest = [m for m in messages if m.role != "system"]
        policy = await self.agent.start(_Seat(system), seed=None)  # type: ignore[arg-type]  # the env parts it reads
        return action_text(await policy.act(Observation(messages=rest))).strip()

    async def aclose(self) -> None:
        await self.agent.aclose()

    def __repr__(self) -> str:  # stable: snapshots compare the env's kwargs by their repr
        return f"AgentPartner({self.name!r})"

    def __deepcopy__(self, memo: dict[int, Any]) -> AgentPartner:  # one model, shared, never copied
        return self


def partner_spec(value: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The agent spec and options of a partner given as ``"hf:PATH"`` or ``{"spec": "hf:PATH", **options}``;
    ``ConfigError`` where it names no LLM agent."""
    options: dict[str, Any] = {}
    if isinstance(value, Mapping):
        if "spec" not in value:
            raise ConfigError(
                f"the partner {dict(value)!r} has no 'spec': write it as {{spec: 'hf:PATH', temperature: 0, ...}}"
            )
        options = {k: v for k, v in value.items() if k != "spec"}
        value = value["spec"]
    spec = str(value)
    if spec.partition(":")[0] not in PARTNER_KINDS:
        raise ConfigError(
            f"partner {spec!r} cannot play a dialogue partner: a partner is {RULE!r} (the env's rule-based one) or "
            f"an LLM agent spec starting with {', '.join(f'{k}:' for k in PARTNER_KINDS)} (e.g. 'hf:PATH')"
        )
    return spec, options


def make_partner(spec: str | Mapping[str, Any], **options: Any) -> AgentPartner:
    """A partner played by the agent ``spec`` (``"hf:PATH"``, ``"vllm:PATH"``, ``"openai:URL#MODEL"``, or a
    mapping ``{"spec": ..., **options}``) with agent ``options`` (sampling fields, ...)."""
    name, given = partner_spec(spec)
    return AgentPartner(make_agent(name, **{**given, **options}))


class PartnerPool:
    """The partners of one run, by spec: each built once, shared by every env that names it, closed together."""

    def __init__(self) -> None:
        self._partners: dict[str, AgentPartner] = {}

    def resolve(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """``kwargs`` with each partner spec (under ``PARTNER_OPTIONS``) replaced by its partner, built on first use."""
        out = dict(kwargs)
        for option in PARTNER_OPTIONS:
            spec = out.get(option)
            if is_partner_spec(spec):
                key = json.dumps(spec, sort_keys=True, default=str)
                if key not in self._partners:
                    self._partners[key] = make_partner(spec)
                out[option] = self._partners[key]
        return out

    async def aclose(self) -> None:
        partners, self._partners = list(self._partners.values()), {}
        for partner in partners:
            await partner.aclose()
