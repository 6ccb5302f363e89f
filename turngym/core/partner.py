"""Partners: the other side of a dialogue env (Car Dealer's buyer, the oracle of Twenty Questions).

A partner is a callable ``partner(messages) -> str`` (or an awaitable of ``str``) with a ``name``: it reads
the dialogue from its own side (a ``system`` message with its instructions and hidden facts, the agent's lines
as ``user`` messages, its own earlier lines as ``assistant`` messages) and returns its next line. An env that
talks with one takes it as an option named in ``PARTNER_OPTIONS`` (``partner=``, ``oracle=``), whose value is:

- ``None`` or ``"rule"``: the env's rule-based partner, which needs no model (the default);
- a ``Partner`` callable (``turngym.agents.partner.make_partner("hf:PATH")`` builds one from an agent spec);
- an agent spec: ``"hf:PATH"``, ``"vllm:PATH"``, ``"openai:URL#MODEL"``, or ``{"spec": "hf:PATH", **options}``
  (sampling options such as ``temperature``). Envs never import agents, so the layer that makes envs (the
  rollout runner, under ``turngym eval`` and ``turngym train``) turns a spec into a callable before ``make``.
  An env made with the spec itself still shows its prompt and passes the checks that do not ask the partner;
  the first question to the partner raises ``ConfigError`` naming the fix.

The partner's replies reach the agent as observation messages (role ``user``, ``name`` = ``message_name`` of
the partner's name), masked like any observation, and every step that carries one records who answered in
``info["partner"]``.

``PartnerEnv`` is the base class of such envs. A subclass writes one turn as a generator,
``play_turn(action)``: it yields the messages the partner must answer, receives the reply, and returns the
step's result; where the rule-based partner answers, it returns without yielding. ``step`` and ``astep``
drive that generator: a rule-based or sync partner costs no event loop, an async partner is awaited by
``astep`` (the runner's path) and run on the env's private event loop by ``step``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Generator, Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

from turngym.core.env import StepResult, TurnEnv
from turngym.core.errors import ConfigError
from turngym.core.types import Action, Message, Observation

__all__ = ["PARTNER_OPTIONS", "RULE", "Partner", "PartnerEnv", "PartnerTurn", "is_partner_spec", "message_name"]

#: the env options whose value is a partner (the runner resolves agent specs given there)
PARTNER_OPTIONS = ("partner", "oracle")
#: the value that picks an env's rule-based partner (as does None)
RULE = "rule"

#: one turn of a partner env: yields what the partner is asked, receives its reply, returns the step's result
PartnerTurn = Generator[list[Message], str, StepResult]


@runtime_checkable
class Partner(Protocol):
    """The other side of a dialogue: its next line, given the dialogue from its side."""

    name: str

    def __call__(self, messages: list[Message]) -> str | Awaitable[str]: ...


def is_partner_spec(value: Any) -> bool:
    """Whether ``value`` is an agent spec that the layer making envs must turn into a ``Partner``."""
    return (isinstance(value, str) and value != RULE) or isinstance(value, Mapping)


_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def message_name(name: str) -> str:
    """``name`` as a chat message's ``name`` field takes it (OpenAI's APIs allow ``[A-Za-z0-9_-]{1,64}``)."""
    return _NOT_NAME.sub("-", name).strip("-")[:64] or "partner"


def _spec_text(value: Any) -> str:
    return str(value.get("spec", value)) if isinstance(value, Mapping) else str(value)


class PartnerEnv(TurnEnv):
    """Base of envs that talk with a partner; see the module docstring. A subclass sets ``partner_option``
    (the name of its option) and ``partner_role`` (what the partner is, for the rule-based one's name) and
    implements ``reset`` and ``play_turn``."""

    #: the option that takes the partner (``partner=`` or ``oracle=``), for error messages
    partner_option: ClassVar[str] = "partner"
    #: what the partner is ("buyer", "oracle"): the rule-based partner is named ``rule-<role>``
    partner_role: ClassVar[str] = "partner"
    #: a partner is per process (it may hold a model): snapshots leave it out, restore keeps the env's own
    snapshot_exclude: ClassVar[tuple[str, ...]] = ("partner",)

    def __init__(self, *, partner: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if partner == RULE:
            partner = None
        if partner is not None and not is_partner_spec(partner) and not callable(partner):
            raise ConfigError(
                f"{self.partner_option}={partner!r} is not a partner: give {RULE!r} (the rule-based {self.partner_role}, "
                "the default), an agent spec such as 'hf:PATH', 'vllm:PATH' or 'openai:URL#MODEL', or a callable "
                "messages -> reply text with a name"
            )
        #: None (rule-based), a Partner callable, or an agent spec not yet resolved into one
        self.partner: Any = partner
        if partner is None:
            name = f"{RULE}-{self.partner_role}"
        elif is_partner_spec(partner):
            name = _spec_text(partner)
        else:
            name = str(getattr(partner, "name", "") or type(partner).__name__)
        #: who the partner is: recorded in ``info["partner"]`` and, as ``message_name``, on its messages
        self.partner_name = name

    @property
    def rule_based(self) -> bool:
        """Whether the env's own rules answer (no partner callable or spec)."""
        return self.partner is None

    def partner_observation(self, text: str, *notes: str) -> Observation:
        """The partner's line as the agent sees it, a user message named after the partner, and the env's
        ``notes`` after it (user messages without a name: the sale, the end of the game)."""
        messages = [{"role": "user", "content": text, "name": message_name(self.partner_name)}]
        messages += [{"role": "user", "content": note} for note in notes]
        return Observation.__pydantic_validator__.validate_python({"messages": messages, "tools": []})

    def play_turn(self, action: Action) -> PartnerTurn:
        """One turn: yield the messages the partner must answer (receive its reply), return the step's result."""
        raise NotImplementedError(f"{type(self).__name__} must implement play_turn()")

    def step(self, action: Action) -> StepResult:
        turn = self.play_turn(action)
        reply: str | None = None
        while True:
            request = _advance(turn, reply)
            if not isinstance(request, list):
                return request
            answer = self._ask(request)
            reply = self._run(_awaited(answer)) if inspect.isawaitable(answer) else str(answer)

    async def astep(self, action: Action) -> StepResult:
        turn = self.play_turn(action)
        reply: str | None = None
        while True:
            request = _advance(turn, reply)
            if not isinstance(request, list):
                return request
            answer = self._ask(request)
            reply = str(await answer) if inspect.isawaitable(answer) else str(answer)

    def _ask(self, messages: list[Message]) -> str | Awaitable[str]:
        partner = self.partner
        if is_partner_spec(partner):
            raise ConfigError(
                f"{self._task_id()} was made with {self.partner_option}={_spec_text(partner)!r}, an agent spec that "
                "nothing turned into a partner: envs never build models. Run it through the rollout runner "
                "(turngym eval / train, run_episodes), which builds the partner from the spec, or pass "
                f"{self.partner_option}=turngym.agents.partner.make_partner({_spec_text(partner)!r}) to make()"
            )
        return partner(messages)


def _advance(turn: PartnerTurn, reply: str | None) -> list[Message] | StepResult:
    """The turn's next request to the partner, or its result once it returns."""
    try:
        return turn.send(reply)  # type: ignore[arg-type]  # None starts the generator
    except StopIteration as done:
        return done.value


async def _awaited(awaitable: Awaitable[str]) -> str:
    return str(await awaitable)
