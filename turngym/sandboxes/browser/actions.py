"""What a browser session can be asked to do: one small typed action model.

The web envs parse the agent's reply (``click(12)``, ``fill(7, "hi")``, a native tool call) into a
``BrowserAction``; ``BrowserSession.act`` performs it. Element ids are the numbers agents see in
the page tree (``[12]``); the session maps them to Playwright's ARIA refs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


ActionKind = Literal[
    "click", "hover", "fill", "select", "press", "type", "scroll", "goto", "mouse_click", "back", "noop"
]
ScrollDirection = Literal["up", "down", "left", "right"]

#: the actions that name a page element
ELEMENT_ACTIONS = frozenset({"click", "hover", "fill", "select"})


class BrowserAction(BaseModel):
    """One browser action. ``ref`` is an element id of the last observation, as agents see it (``12``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: ActionKind
    ref: str | None = None
    text: str | None = None
    key: str | None = None
    direction: ScrollDirection | None = None
    url: str | None = None
    x: float | None = None
    y: float | None = None

    def __str__(self) -> str:
        args: list[str] = []
        if self.ref is not None:
            args.append(self.ref)
        args += [repr(v) for v in (self.text, self.key, self.url) if v is not None]
        if self.direction is not None:
            args.append(self.direction)
        if self.x is not None and self.y is not None:
            args += [f"{self.x:g}", f"{self.y:g}"]
        return f"{self.kind}({', '.join(args)})"


def ref_of(element_id: str | int) -> str:
    """The id an agent wrote, normalised: ``12``, ``"12"``, ``[12]``, ``e12`` -> ``12``."""
    text = str(element_id).strip().strip("[]").strip()
    return text[1:] if text[:1] == "e" and text[1:].isdigit() else text
