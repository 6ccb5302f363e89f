"""The web action format: parsing calls and native tool calls, errors that say what to write."""

from __future__ import annotations

import numpy as np
import pytest

from turngym.core.errors import ActionError
from turngym.core.types import Message, ToolCall
from turngym.envs.web.actions import BrowserActions
from turngym.sandboxes.browser.actions import BrowserAction

FMT = BrowserActions()


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("click(12)", BrowserAction(kind="click", ref="12")),
        ("I will press the button.\nclick([12])", BrowserAction(kind="click", ref="12")),
        ("click(e12)", BrowserAction(kind="click", ref="12")),
        ('fill(7, "hello, (world)")', BrowserAction(kind="fill", ref="7", text="hello, (world)")),
        ("fill(7, 'it''s')", BrowserAction(kind="fill", ref="7", text="its")),
        ('select(3, "Blue")', BrowserAction(kind="select", ref="3", text="Blue")),
        ('press("Enter")', BrowserAction(kind="press", key="Enter")),
        ("press(Enter)", BrowserAction(kind="press", key="Enter")),
        ('scroll("DOWN")', BrowserAction(kind="scroll", direction="down")),
        ('goto("http://127.0.0.1:8000/a")', BrowserAction(kind="goto", url="http://127.0.0.1:8000/a")),
        ("mouse_click(40, 80.5)", BrowserAction(kind="mouse_click", x=40, y=80.5)),
        ("first click(1) then, on second thought, click(2)", BrowserAction(kind="click", ref="2")),
        ("```\nfill(text='x', id=4)\n```", BrowserAction(kind="fill", ref="4", text="x")),
        ("back()", BrowserAction(kind="back")),
    ],
)
def test_parses_calls(reply, expected):
    assert FMT.parse(reply) == expected


def test_parses_native_tool_calls():
    msg = Message(role="assistant", content="", tool_calls=[ToolCall(name="fill", arguments={"id": 7, "text": "hi"})])
    assert FMT.parse(msg) == BrowserAction(kind="fill", ref="7", text="hi")
    with pytest.raises(ActionError, match="text"):
        FMT.parse(Message(role="assistant", tool_calls=[ToolCall(name="fill", arguments={"id": 7})]))
    with pytest.raises(ActionError, match="unknown action 'drag'"):
        FMT.parse(Message(role="assistant", tool_calls=[ToolCall(name="drag", arguments={})]))


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("I think the answer is 7", "no action"),
        ("click(", "not closed"),
        ("click(1, 2)", "takes 1 argument"),
        ('fill(7)', "takes 2 argument"),
        ('scroll("sideways")', "not up, down"),
        ("mouse_click('a', 3)", "number of pixels"),
        ("click(x + 1)", "numbers or quoted strings"),
        ('fill(7, text="a", colour="b")', "no argument 'colour'"),
        ('press("")', "key name"),
    ],
)
def test_malformed_actions_say_how_to_fix_them(reply, message):
    with pytest.raises(ActionError, match=message):
        FMT.parse(reply)


def test_describes_itself_and_offers_tools():
    text = FMT.describe()
    for sig in ("click(id)", 'fill(id, "text")', 'select(id, "option")', 'press("key")', "mouse_click(x, y)"):
        assert sig in text
    assert {t.name for t in FMT.tools} == {
        "click", "fill", "select", "hover", "press", "type", "scroll", "goto", "back", "mouse_click", "noop",
    }
    assert FMT.tools[0].parameters["required"] == ["id"]


def test_restricted_format_and_samples_parse_or_fail_cleanly():
    visual = BrowserActions(("mouse_click", "press"))
    with pytest.raises(ActionError, match="no action"):
        visual.parse("click(3)")
    rng = np.random.default_rng(0)
    for _ in range(30):
        assert isinstance(FMT.parse(FMT.sample(rng)), BrowserAction)
    with pytest.raises(ValueError, match="unknown browser actions"):
        BrowserActions(("drag",))
