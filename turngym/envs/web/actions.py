"""The action format of the web envs: browser actions written as calls, ``click(12)``, ``fill(7, "hi")``.

The last call in the reply counts (the agent may think aloud before it). The same actions are
offered as native tools (``tool_calls`` with ``{"id": 12}`` arguments), so chat models with tool
calling can use them directly. A reply that names no action, an unknown action, or arguments of
the wrong kind raises ``ActionError``; an id that is not on the page is caught by the session.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import numpy as np

from turngym.core.actions import ActionFormat
from turngym.core.errors import ActionError
from turngym.core.types import Action, Message, ToolSpec, action_text
from turngym.sandboxes.browser.actions import BrowserAction, ref_of

#: name -> (parameters in order, description)
ACTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "click": (("id",), "click the element with this id"),
    "fill": (("id", "text"), "clear the text field with this id and type the text into it"),
    "select": (("id", "option"), "choose the option (its label) in the drop-down list with this id"),
    "hover": (("id",), "move the mouse over the element with this id"),
    "press": (("key",), 'press a key or a combination, e.g. "Enter", "Tab", "Control+A"'),
    "type": (("text",), "type text into the focused element"),
    "scroll": (("direction",), 'scroll the page: "up", "down", "left" or "right"'),
    "goto": (("url",), "open a URL (only the site of the task)"),
    "back": ((), "go back to the previous page"),
    "mouse_click": (("x", "y"), "click at pixel x, y of the screenshot"),
    "noop": ((), "do nothing (let the page update)"),
}

_PARAM_SCHEMA: dict[str, dict[str, Any]] = {
    "id": {"type": ["integer", "string"], "description": "element id, the number in [brackets] in the page tree"},
    "text": {"type": "string"},
    "option": {"type": "string"},
    "key": {"type": "string"},
    "direction": {"type": "string", "enum": ["up", "down", "left", "right"]},
    "url": {"type": "string"},
    "x": {"type": "number"},
    "y": {"type": "number"},
}

_CALL = re.compile(r"\b(" + "|".join(ACTIONS) + r")\s*\(")


class BrowserActions(ActionFormat):
    """``click(12)``, ``fill(7, "hello")``, ``select(3, "Blue")``, ``press("Enter")``, ``scroll("down")``,
    ``goto("http://127.0.0.1:8000/")``, ``mouse_click(40, 80)`` or the same as native tool calls.

    ``actions`` limits the set offered (screenshot-only agents: ``("mouse_click", "press", "type")``).
    """

    name = "browser_actions"

    def __init__(self, actions: tuple[str, ...] | None = None) -> None:
        unknown = set(actions or ()) - set(ACTIONS)
        if unknown:
            raise ValueError(f"unknown browser actions {sorted(unknown)}: choose among {', '.join(ACTIONS)}")
        self.actions = tuple(actions) if actions else tuple(ACTIONS)
        self.tools = [
            ToolSpec(
                name=name,
                description=ACTIONS[name][1],
                parameters={
                    "type": "object",
                    "properties": {p: _PARAM_SCHEMA[p] for p in ACTIONS[name][0]},
                    "required": list(ACTIONS[name][0]),
                },
            )
            for name in self.actions
        ]

    # parsing ------------------------------------------------------------------------------
    def parse(self, action: Action) -> BrowserAction:
        if isinstance(action, Message) and action.tool_calls:
            call = action.tool_calls[-1]
            if call.name not in self.actions:
                raise ActionError(f"unknown action {call.name!r}: the actions are {', '.join(self.actions)}")
            params = ACTIONS[call.name][0]
            missing = [p for p in params if p not in call.arguments]
            if missing:
                raise ActionError(f"{call.name} needs the argument(s) {', '.join(missing)}: {self._sig(call.name)}")
            return self._build(call.name, [call.arguments[p] for p in params])
        text = action_text(action)
        name, args = self._last_call(text)
        return self._build(name, args)

    def _last_call(self, text: str) -> tuple[str, list[Any]]:
        matches = [m for m in _CALL.finditer(text) if m.group(1) in self.actions]
        if not matches:
            shown = text.strip()[:80]
            raise ActionError(
                f"no action in {shown!r}: write one action such as click(12) or fill(7, \"text\"). "
                f"The actions are {', '.join(self._sig(a) for a in self.actions)}"
            )
        m = matches[-1]
        name = m.group(1)
        close = _matching_paren(text, m.end() - 1)
        if close < 0:
            raise ActionError(f"{name}( is not closed: write it as {self._sig(name)}")
        source = text[m.start(1) : close + 1]
        try:
            node = ast.parse(source, mode="eval").body
        except SyntaxError:
            raise ActionError(f"{source!r} is not a valid call: write it as {self._sig(name)}") from None
        if not isinstance(node, ast.Call) or node.keywords and any(k.arg is None for k in node.keywords):
            raise ActionError(f"{source!r} is not a valid call: write it as {self._sig(name)}")
        args = [_literal(a, source) for a in node.args]
        params = ACTIONS[name][0]
        by_name = {}
        for kw in node.keywords:
            if kw.arg not in params or params.index(kw.arg) < len(args):
                raise ActionError(f"{name} has no argument {kw.arg!r} here: write it as {self._sig(name)}")
            by_name[kw.arg] = _literal(kw.value, source)
        args += [by_name[p] for p in params[len(args) :] if p in by_name]
        return name, args

    def _build(self, name: str, args: list[Any]) -> BrowserAction:
        params = ACTIONS[name][0]
        if len(args) != len(params):
            raise ActionError(f"{name} takes {len(params)} argument(s), got {len(args)}: write it as {self._sig(name)}")
        values = dict(zip(params, args, strict=True))
        fields: dict[str, Any] = {"kind": name}
        if "id" in values:
            if isinstance(values["id"], list) and len(values["id"]) == 1:  # click([12])
                values["id"] = values["id"][0]
            if isinstance(values["id"], bool) or not isinstance(values["id"], int | str) or not str(values["id"]).strip():
                raise ActionError(f"{name}: the id must be an element id such as 12, got {values['id']!r}")
            fields["ref"] = ref_of(values["id"])
        for p, f in (("text", "text"), ("option", "text"), ("key", "key"), ("url", "url")):
            if p in values:
                if not isinstance(values[p], str | int | float) or isinstance(values[p], bool):
                    raise ActionError(f"{name}: {p} must be a string, got {values[p]!r}")
                fields[f] = str(values[p])
        if "direction" in values:
            d = str(values["direction"]).lower()
            if d not in ("up", "down", "left", "right"):
                raise ActionError(f"scroll direction {values['direction']!r} is not up, down, left or right")
            fields["direction"] = d
        for p in ("x", "y"):
            if p in values:
                if isinstance(values[p], bool) or not isinstance(values[p], int | float):
                    raise ActionError(f"mouse_click: {p} must be a number of pixels, got {values[p]!r}")
                fields[p] = float(values[p])
        if name == "press" and not fields["key"].strip():
            raise ActionError('press needs a key name, e.g. press("Enter")')
        return BrowserAction(**fields)

    # prompts ------------------------------------------------------------------------------
    def _sig(self, name: str) -> str:
        params = ACTIONS[name][0]
        shown = {"id": "id", "text": '"text"', "option": '"option"', "key": '"key"', "direction": '"down"', "url": '"url"'}
        return f"{name}({', '.join(shown.get(p, p) for p in params)})"

    def describe(self) -> str:
        lines = [
            "Act on the page with one action per reply, written as a call (the last call in your reply counts):"
        ]
        lines += [f"- {self._sig(a)}: {ACTIONS[a][1]}" for a in self.actions]
        if any(a in self.actions for a in ("click", "fill", "select", "hover")):
            lines.append("Element ids are the numbers in [brackets] in the page tree, e.g. click(12).")
        return "\n".join(lines)

    def pattern(self) -> str | None:
        return r"[\s\S]*\b(" + "|".join(self.actions) + r")\([^\n]*\)\s*"

    def sample(self, rng: np.random.Generator) -> Action:
        name = self.actions[int(rng.integers(len(self.actions)))]
        fake = {"id": int(rng.integers(1, 30)), "text": '"a"', "option": '"a"', "key": '"Enter"',
                "direction": '"down"', "url": '"http://127.0.0.1/"', "x": int(rng.integers(0, 160)),
                "y": int(rng.integers(0, 210))}
        return f"{name}({', '.join(str(fake[p]) for p in ACTIONS[name][0])})"


def _matching_paren(text: str, open_at: int) -> int:
    """The index of the parenthesis closing the one at ``open_at`` (quotes respected), or -1."""
    depth, quote, i = 0, "", open_at
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _literal(node: ast.expr, source: str) -> Any:
    if isinstance(node, ast.Name):  # click(e12), press(Enter), scroll(down)
        return node.id
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ActionError(f"{source!r}: arguments must be numbers or quoted strings") from None
