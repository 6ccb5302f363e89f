"""Action formats: how an env reads the assistant's reply.

Each format parses an action (raw text, or an assistant message with ``tool_calls``), describes
itself for a prompt, offers a regular expression that every valid reply matches (so backends can
restrict sampling to it) and samples a random action for random agents.

    BracketedMove   "I guess [7]"                       -> "7"
    TaggedBlock     "<python>print(1)</python>"         -> Tagged("python", "print(1)")
    JsonToolCall    '<tool_call>{"name": ...}</tool_call>' -> [ToolCall]
    NativeToolCalls Message(tool_calls=[...])           -> [ToolCall]
    FreeText        anything non-empty                  -> the text

A reply that does not parse raises ``ActionError``; ``TurnEnv`` turns that into an error
observation, never an exception for the caller.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, NamedTuple

import jsonschema
import numpy as np

from turngym.core.errors import ActionError
from turngym.core.types import Action, Message, ToolCall, ToolSpec, action_text

_SHORT = 80


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _SHORT else text[: _SHORT - 3] + "..."


class ActionFormat(ABC):
    """How an env reads actions. Subclasses are small and immutable."""

    name: str = "format"

    @abstractmethod
    def parse(self, action: Action) -> Any:
        """The parsed action; raises ``ActionError`` naming what was wrong and how to fix it."""

    @abstractmethod
    def describe(self) -> str:
        """One or two sentences for a system prompt: how to write an action."""

    def pattern(self) -> str | None:
        """A regex the whole reply must match to parse, for constrained sampling; None if unknown."""
        return None

    def sample(self, rng: np.random.Generator) -> Action:
        """A random action (not necessarily valid)."""
        return "".join(rng.choice(list("abcdefgh [] 0123456789"), size=int(rng.integers(1, 12))))


class FreeText(ActionFormat):
    name = "free_text"

    def parse(self, action: Action) -> str:
        text = action_text(action).strip()
        if not text:
            raise ActionError("the reply is empty: write a non-empty answer")
        return text

    def describe(self) -> str:
        return "Reply in plain text."


_BRACKET = re.compile(r"\[([^\[\]\n]*)\]")


class BracketedMove(ActionFormat):
    """A move in square brackets, e.g. ``[7]`` or ``[e2e4]``; the last bracketed move counts.

    ``choices`` limits the moves to a fixed set (case-insensitive); ``move_pattern`` is a regex the
    move must match. ``example`` shows the form in prompts and errors.
    """

    name = "bracketed"

    def __init__(
        self,
        *,
        choices: Sequence[str] | None = None,
        move_pattern: str | None = None,
        example: str = "[move]",
        what: str = "move",
    ) -> None:
        self.choices = tuple(choices) if choices is not None else None
        self._lookup = {c.lower(): c for c in self.choices} if self.choices else None
        self.move_pattern = move_pattern
        self._move_re = re.compile(move_pattern, re.IGNORECASE) if move_pattern else None
        self.example = example
        self.what = what

    def parse(self, action: Action) -> str:
        text = action if isinstance(action, str) else action_text(action)
        found = _BRACKET.findall(text)
        if not found:
            raise ActionError(
                f"no {self.what} in square brackets in {_clip(text)!r}: "
                f"write your {self.what} in square brackets, for example {self.example}"
            )
        move = found[-1].strip()
        if self._lookup is not None:
            hit = self._lookup.get(move.lower())
            if hit is None:
                shown = ", ".join(self.choices[:12]) + (", ..." if len(self.choices) > 12 else "")
                raise ActionError(f"[{move}] is not a valid {self.what}: choose one of {shown}")
            return hit
        if self._move_re is not None and not self._move_re.fullmatch(move):
            raise ActionError(f"[{move}] is not a valid {self.what}: it must look like {self.example}")
        return move

    def describe(self) -> str:
        text = f"Write your {self.what} in square brackets, for example {self.example}."
        if self.choices and len(self.choices) <= 12:
            text += " Valid: " + ", ".join(f"[{c}]" for c in self.choices) + "."
        return text + f" Only the last bracketed {self.what} counts."

    def pattern(self) -> str | None:
        if self.choices:
            return r"\[(" + "|".join(re.escape(c) for c in self.choices) + r")\]"
        if self.move_pattern:
            return r"\[(" + self.move_pattern + r")\]"
        return None

    def sample(self, rng: np.random.Generator) -> Action:
        if self.choices:
            return f"[{self.choices[int(rng.integers(len(self.choices)))]}]"
        return super().sample(rng)


class Tagged(NamedTuple):
    tag: str
    content: str


class TaggedBlock(ActionFormat):
    """A block in tags, ``<python>...</python>``, or a fenced block, ````python ... ````.

    ``tags`` are the tags accepted; the last block in the reply counts.
    """

    name = "tagged"

    def __init__(self, tags: Sequence[str] = ("python",), *, example: str | None = None) -> None:
        if not tags:
            raise ValueError("TaggedBlock needs at least one tag, e.g. TaggedBlock(('python',))")
        self.tags = tuple(tags)
        names = "|".join(re.escape(t) for t in self.tags)
        self._re = re.compile(rf"<({names})>(.*?)</\1>|```({names})[ \t]*\n(.*?)```", re.DOTALL)
        self.example = example or f"<{self.tags[0]}>...</{self.tags[0]}>"

    def parse(self, action: Action) -> Tagged:
        text = action_text(action)
        found = list(self._re.finditer(text))
        if not found:
            tags = " or ".join(f"<{t}>...</{t}>" for t in self.tags)
            raise ActionError(f"no {tags} block in {_clip(text)!r}: put it inside the tags, for example {self.example}")
        m = found[-1]
        tag, content = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        return Tagged(tag, content.strip("\n"))

    def describe(self) -> str:
        tags = " or ".join(f"<{t}>...</{t}>" for t in self.tags)
        return f"Reply with one block {tags}, for example {self.example}. Only the last block counts."

    def pattern(self) -> str | None:
        names = "|".join(re.escape(t) for t in self.tags)
        return rf"[\s\S]*<({names})>[\s\S]*</({names})>\s*"


def _validate_call(call: ToolCall, tools: dict[str, ToolSpec]) -> ToolCall:
    spec = tools.get(call.name)
    if spec is None:
        raise ActionError(f"unknown tool {call.name!r}: the tools are {', '.join(sorted(tools)) or 'none'}")
    try:
        jsonschema.validate(call.arguments, spec.parameters)
    except jsonschema.ValidationError as e:
        raise ActionError(f"bad arguments for tool {call.name!r}: {e.message}") from None
    return call


def _tools_text(tools: Sequence[ToolSpec]) -> str:
    lines = []
    for t in tools:
        params = ", ".join(t.parameters.get("properties", {}))
        lines.append(f"- {t.name}({params}): {t.description}")
    return "\n".join(lines)


_TOOL_CALL_TAG = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


class JsonToolCall(ActionFormat):
    """A tool call written as JSON in the reply text, Hermes/Qwen style:
    ``<tool_call>{"name": "run", "arguments": {"code": "..."}}</tool_call>``.

    With ``allow_text=True`` a reply with no tool call is returned as a plain string (a final answer).
    """

    name = "json_tool_call"

    def __init__(self, tools: Sequence[ToolSpec], *, allow_text: bool = False) -> None:
        self.tools = {t.name: t for t in tools}
        self.allow_text = allow_text

    def parse(self, action: Action) -> list[ToolCall] | str:
        text = action_text(action)
        blobs = _TOOL_CALL_TAG.findall(text)
        if not blobs:
            if self.allow_text and text.strip():
                return text.strip()
            raise ActionError(
                f"no <tool_call> in {_clip(text)!r}: call a tool as "
                '<tool_call>{"name": "...", "arguments": {...}}</tool_call>'
            )
        calls = []
        for i, blob in enumerate(blobs):
            try:
                data = json.loads(blob)
            except json.JSONDecodeError as e:
                raise ActionError(f"the tool call {_clip(blob)!r} is not valid JSON ({e.msg}): fix the JSON") from None
            if not isinstance(data, dict) or "name" not in data:
                raise ActionError(f'the tool call {_clip(blob)!r} needs {{"name": ..., "arguments": {{...}}}}')
            args = data.get("arguments", {})
            if not isinstance(args, dict):
                raise ActionError(f"the arguments of {data['name']!r} must be a JSON object, got {_clip(str(args))!r}")
            calls.append(_validate_call(ToolCall(id=f"call_{i}", name=str(data["name"]), arguments=args), self.tools))
        return calls

    def describe(self) -> str:
        text = (
            "Call a tool by writing "
            '<tool_call>{"name": "TOOL", "arguments": {...}}</tool_call>. Tools:\n' + _tools_text(self.tools.values())
        )
        if self.allow_text:
            text += "\nReply without a tool call to give your final answer."
        return text


class NativeToolCalls(ActionFormat):
    """Structured ``tool_calls`` on an assistant message, as chat APIs and vLLM's tool parser return them.

    With ``allow_text=True`` a message with no tool calls is returned as its text (a final answer).
    """

    name = "native_tool_calls"

    def __init__(self, tools: Sequence[ToolSpec], *, allow_text: bool = False) -> None:
        self.tools = {t.name: t for t in tools}
        self.allow_text = allow_text

    def parse(self, action: Action) -> list[ToolCall] | str:
        calls = action.tool_calls if isinstance(action, Message) else None
        if not calls:
            if self.allow_text and action_text(action).strip():
                return action_text(action).strip()
            raise ActionError(
                "the reply has no tool_calls: call one of the tools " + ", ".join(sorted(self.tools))
            )
        return [_validate_call(c, self.tools) for c in calls]

    def describe(self) -> str:
        text = "Call the tools through the tool-calling interface. Tools:\n" + _tools_text(self.tools.values())
        if self.allow_text:
            text += "\nReply without a tool call to give your final answer."
        return text
