"""The data every part of turngym speaks: messages, tool calls, observations, episodes.

Pydantic models, so they validate on the way in and serialise to JSON on the way out. The
shapes follow the OpenAI chat format that vLLM, transformers chat templates and most agents use.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

Role = Literal["system", "user", "assistant", "tool"]


class TextPart(BaseModel):
    model_config = ConfigDict(frozen=True)
    type: Literal["text"] = "text"
    text: str


class ImagePart(BaseModel):
    """An image, as a data URL (``data:image/png;base64,...``) or a file/http URL."""

    model_config = ConfigDict(frozen=True)
    type: Literal["image"] = "image"
    url: str


ContentPart = Union[TextPart, ImagePart]


class ToolCall(BaseModel):
    """A call of one tool: ``name`` with JSON ``arguments``, as in the OpenAI tool-calling format."""

    model_config = ConfigDict(frozen=True)
    id: str = ""
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments)},
        }


class ToolSpec(BaseModel):
    """A tool the agent may call: a name, a description and a JSON schema of its parameters."""

    model_config = ConfigDict(frozen=True)
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class Message(BaseModel):
    """One chat message. ``content`` is plain text or a list of text and image parts."""

    model_config = ConfigDict(frozen=True)
    role: Role
    content: str | list[ContentPart] = ""
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    @property
    def text(self) -> str:
        """The text of the message, image parts left out."""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def images(self) -> list[ImagePart]:
        if isinstance(self.content, str):
            return []
        return [p for p in self.content if isinstance(p, ImagePart)]

    def to_openai(self) -> dict[str, Any]:
        """The message as a chat-template / OpenAI API dict."""
        out: dict[str, Any] = {"role": self.role}
        if isinstance(self.content, str):
            out["content"] = self.content
        else:
            out["content"] = [
                {"type": "text", "text": p.text}
                if isinstance(p, TextPart)
                else {"type": "image_url", "image_url": {"url": p.url}}
                for p in self.content
            ]
        if self.tool_calls:
            out["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        return out


_new = object.__new__
_setattr = object.__setattr__


def _trusted(cls: type[BaseModel], fields: dict[str, Any], fields_set: set[str]) -> Any:
    """An instance of ``cls`` from values already known to be valid: every field present, of its
    type (what ``model_construct`` does, at a fraction of its cost). Callers check the types first
    and fall back to validation otherwise. (For nested models one ``__pydantic_validator__`` call
    on plain data is as fast: see ``Observation.text``.)"""
    obj = _new(cls)
    _setattr(obj, "__dict__", fields)
    _setattr(obj, "__pydantic_fields_set__", fields_set)
    _setattr(obj, "__pydantic_extra__", None)
    _setattr(obj, "__pydantic_private__", None)
    return obj


def user(text: str) -> Message:
    return Message(role="user", content=text)


class Observation(BaseModel):
    """What the env shows the agent after a reset or a step.

    ``messages`` are the new messages since the agent's last action (role ``user`` or ``tool``);
    ``tools`` are the tools the agent may call now (empty for plain text envs).
    """

    model_config = ConfigDict(frozen=True)
    messages: list[Message] = Field(default_factory=list)
    tools: list[ToolSpec] = Field(default_factory=list)

    @classmethod
    def text(cls, text: str, tools: list[ToolSpec] | None = None) -> Observation:
        """One user message (and the tools the agent may call)."""
        # one validator call for the observation and its message: twice as fast as building the
        # Message first (this runs at every step of every env)
        return cls.__pydantic_validator__.validate_python(
            {"messages": [{"role": "user", "content": text}], "tools": tools or []}
        )

    @property
    def last_text(self) -> str:
        return self.messages[-1].text if self.messages else ""

    def __str__(self) -> str:
        return "\n".join(m.text for m in self.messages)


# An action is the assistant's raw text, or an assistant message (with tool_calls).
Action = Union[str, Message]


def action_text(action: Action) -> str:
    """The text of an action, whichever form it came in."""
    return action if isinstance(action, str) else action.text


def as_message(action: Action) -> Message:
    return Message(role="assistant", content=action) if isinstance(action, str) else action


class Turn(BaseModel):
    """One turn of an episode: the agent's action and what the env answered.

    ``action_span`` and ``observation_span`` are [start, end) offsets into the episode's token
    stream; they are empty for agents that do not produce tokens.
    """

    index: int
    action: str
    tool_calls: list[ToolCall] | None = None
    observation: list[Message] = Field(default_factory=list)
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    action_error: str | None = None
    info: dict[str, Any] = Field(default_factory=dict)
    action_span: tuple[int, int] | None = None
    observation_span: tuple[int, int] | None = None
    duration: float = 0.0


class Episode(BaseModel):
    """The record of one episode, the row of the turn table (DESIGN.md, Turn table)."""

    run_id: str = ""
    episode_id: str
    group_id: str = ""
    env_id: str
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    task_id: str = ""
    instance_hash: str = ""
    agent: str = ""
    prompt: list[Message] = Field(default_factory=list)
    turns: list[Turn] = Field(default_factory=list)
    # token stream of LLM agents; empty for scripted agents
    tokens: list[int] = Field(default_factory=list)
    mask: list[int] = Field(default_factory=list)
    logprobs: list[float] = Field(default_factory=list)
    trainable: bool = False
    success: bool | None = None
    error: str | None = None
    truncated: bool = False
    wall_time: float = 0.0
    timings: dict[str, float] = Field(default_factory=dict)
    info: dict[str, Any] = Field(default_factory=dict)
    #: a branch of a tree rollout (turngym.agents.runner.branch_tasks): the episode it continues; its first
    #: ``branch_turn`` turns are that episode's, copied with their tokens (mask 0: sampled once, in the parent)
    parent_id: str = ""
    branch_turn: int | None = None
    #: the version of the policy that sampled it: in a training run, the number of updates in the weights the
    #: rollout engine served (iteration k's episodes have k - 1, or k - 2 with ``rollout.overlap``); None elsewhere
    policy_version: int | None = None
    #: the branch points recorded while it was played (EpisodeTask.branch_points): in memory only, never stored
    _branch_points: Any = PrivateAttr(default=None)

    @property
    def total_return(self) -> float:
        return sum(t.reward for t in self.turns)

    @property
    def num_turns(self) -> int:
        return len(self.turns)

    @property
    def invalid_actions(self) -> int:
        return sum(t.action_error is not None for t in self.turns)
