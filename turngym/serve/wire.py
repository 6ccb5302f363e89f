"""What a served env's messages look like on the wire: the OpenEnv shapes, with turngym's types inside.

One place maps a turngym step to the OpenEnv payload and back, for the server (``server.py``) and the
remote env (``remote.py``) alike:

    {"observation": {"text": ..., "metadata": {...}}, "reward": 1.0, "done": false, "metadata": {...}}

``observation`` holds only the fields its JSON Schema (``/schema``) declares: ``text`` (the new
messages' text, all a plain OpenEnv client needs) and ``metadata``. turngym's extras travel in
``metadata``, never as new observation fields (typed clients reject unknown ones): ``messages`` (the
full messages, images included), ``tools`` (what the agent may call now), ``info`` (the env's info
dict: ``task_id``, ``instance_hash``, ``success``, ``action_error`` ...), ``terminated`` and
``truncated`` (OpenEnv has only ``done``), and ``legal_actions`` where the client asked for them at reset. OpenEnv puts ``metadata`` both inside the observation and
beside it; so does this.

An action is ``{"text": "..."}`` or ``{"text": "", "tool_calls": [{"name": ..., "arguments": {...}}]}``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python

from turngym.core.env import ResetResult, StepResult
from turngym.core.types import Action, Message, Observation, ToolCall, ToolSpec


class ServedAction(BaseModel):
    """The action of one step: the assistant's reply text and, for tool envs, its tool calls."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field("", description="The assistant's reply, as the env's action format reads it")
    tool_calls: list[ToolCall] | None = Field(None, description="Structured tool calls (native tool-calling envs)")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Ignored by the env; OpenEnv's Action has it")


class ServedObservation(BaseModel):
    """The observation after a reset or a step. The new messages' text; everything else in ``metadata``."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field("", description="The text of the new messages since the last action")
    done: bool = Field(False, description="Whether the episode has ended (terminated or truncated)")
    reward: float | None = Field(None, description="Reward of the last action; None after a reset")
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="turngym's extras: messages (with images), tools, info, terminated, truncated",
    )


class ServedState(BaseModel):
    """Where the session's episode stands."""

    model_config = ConfigDict(extra="allow")
    episode_id: str | None = None
    step_count: int = 0
    env_id: str = ""
    seed: int | None = None
    task_id: str = ""
    instance_hash: str = ""
    done: bool = False
    total_reward: float = 0.0


class ResetData(BaseModel):
    """What a ``reset`` may carry: the seed that fixes the task instance, an episode id, the env's options."""

    model_config = ConfigDict(extra="forbid")
    seed: int | None = Field(None, ge=0)
    episode_id: str | None = Field(None, max_length=255)
    options: dict[str, Any] | None = None
    #: turngym's extra: put the env's legal replies (``legal_actions()``) in every observation's metadata
    legal_actions: bool = False


def jsonable(value: Any) -> Any:
    """``value`` as JSON types; what JSON cannot hold (numpy scalars aside, which convert) becomes its str."""
    return to_jsonable_python(value, fallback=str)


def _payload(
    obs: Observation,
    reward: float | None,
    terminated: bool,
    truncated: bool,
    info: dict[str, Any],
    legal: list[str] | None,
) -> dict:
    metadata = {
        "messages": [m.model_dump(mode="json", exclude_none=True) for m in obs.messages],
        "tools": [t.model_dump(mode="json") for t in obs.tools],
        "info": jsonable(info),
        "terminated": bool(terminated),
        "truncated": bool(truncated),
    }
    if legal is not None:
        metadata["legal_actions"] = list(legal)
    done = bool(terminated or truncated)
    return {
        "observation": {"text": str(obs), "metadata": metadata},
        "reward": reward,
        "done": done,
        "metadata": metadata,
    }


def reset_payload(result: ResetResult, legal: list[str] | None = None) -> dict[str, Any]:
    obs, info = result
    return _payload(obs, None, False, False, info, legal)


def step_payload(result: StepResult, legal: list[str] | None = None) -> dict[str, Any]:
    obs, reward, terminated, truncated, info = result
    return _payload(obs, float(reward), terminated, truncated, info, legal)


def parse_action(data: dict[str, Any]) -> Action:
    """The turngym action of a step message's ``data``; a pydantic ``ValidationError`` if it is malformed."""
    action = ServedAction.model_validate(data)
    if action.tool_calls:
        return Message(role="assistant", content=action.text, tool_calls=action.tool_calls)
    return action.text


def action_data(action: Action) -> dict[str, Any]:
    """The ``data`` of a step message for ``action`` (what ``parse_action`` reads back)."""
    if isinstance(action, str):
        return {"text": action}
    out: dict[str, Any] = {"text": action.text}
    if action.tool_calls:
        out["tool_calls"] = [c.model_dump(mode="json") for c in action.tool_calls]
    return out


def observation_of(payload: dict[str, Any]) -> Observation:
    """The turngym observation in a reset or step payload (from ``metadata``; the text if a server sent only that)."""
    metadata = payload.get("metadata") or payload.get("observation", {}).get("metadata") or {}
    if "messages" not in metadata:
        return Observation.text(str(payload.get("observation", {}).get("text", "")))
    return Observation(
        messages=[Message.model_validate(m) for m in metadata["messages"]],
        tools=[ToolSpec.model_validate(t) for t in metadata.get("tools", [])],
    )


def step_result_of(payload: dict[str, Any]) -> StepResult:
    metadata = payload.get("metadata") or {}
    done = bool(payload.get("done", False))
    terminated = bool(metadata.get("terminated", done))
    truncated = bool(metadata.get("truncated", False))
    reward = payload.get("reward")
    return (
        observation_of(payload),
        float(reward or 0.0),
        terminated,
        truncated,
        dict(metadata.get("info", {})),
    )


def reset_result_of(payload: dict[str, Any]) -> ResetResult:
    metadata = payload.get("metadata") or {}
    return observation_of(payload), dict(metadata.get("info", {}))
