"""The accessibility-tree text agents read, built from Playwright's AI-mode ARIA snapshot.

``page.aria_snapshot(mode="ai")`` gives every element a ref (``e12``; ``f1e3`` inside an iframe)
that Playwright keeps on the DOM element itself: an element keeps its ref across snapshots of one
page as long as its role and name stay the same, so ids are stable from step to step. Actions
address elements through the ``aria-ref=e12`` locator.

    - button "Ok" [ref=e7] [box=2,74,33,21]       (Playwright)
    - [7] button "Ok"                              (what the agent reads)

Playwright's refs carry a frame prefix after a navigation (``f2e15``); the session maps them to
plain numbers that keep growing over the episode, so an id never names two elements.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

_LINE = re.compile(r"^(?P<indent>\s*)- (?P<body>.*)$")
_REF = re.compile(r" ?\[ref=(?P<ref>[a-z0-9]+)\]")
_BOX = re.compile(r" ?\[box=(?P<box>-?[\d.]+,-?[\d.]+,-?[\d.]+,-?[\d.]+)\]")
_NOISE = re.compile(r" ?\[cursor=pointer\]")
_ROLE_NAME = re.compile(r'^(?P<role>[a-z]+)(?: "(?P<name>(?:[^"\\]|\\.)*)")?')


class Element(NamedTuple):
    """One element of the snapshot that has a ref."""

    #: the id agents use (``12``), stable for the element while the page lives
    id: str
    #: Playwright's ref (``e12``, ``f2e7``), for the ``aria-ref=`` locator
    ref: str
    role: str
    name: str
    #: x, y, width, height in CSS pixels, when the snapshot was taken with boxes
    box: tuple[float, float, float, float] | None
    #: the text after the colon on the element's line (its own text), if any
    text: str
    #: the rendered line, as the agent reads it
    line: str


def parse_snapshot(snapshot: str, name_of: Callable[[str], str] = lambda ref: ref) -> tuple[str, list[Element]]:
    """The agent-facing tree text and the elements with refs, from an AI-mode ARIA snapshot.
    ``name_of`` gives the id agents see for a ref (``BrowserSession`` numbers them 1, 2, 3...)."""
    lines: list[str] = []
    elements: list[Element] = []
    for raw in snapshot.splitlines():
        m = _LINE.match(raw)
        if m is None:  # continuation lines of multi-line text, kept as they are
            lines.append(raw)
            continue
        body = _unyaml(_NOISE.sub("", m.group("body")))
        box_m = _BOX.search(body)
        box = tuple(float(v) for v in box_m.group("box").split(",")) if box_m else None
        body = _BOX.sub("", body)
        ref_m = _REF.search(body)
        if ref_m is None:
            lines.append(f"{m.group('indent')}- {body}")
            continue
        ref = ref_m.group("ref")
        body = _REF.sub("", body)
        eid = name_of(ref)
        shown = f"{m.group('indent')}- [{eid}] {body}"
        lines.append(shown)
        rn = _ROLE_NAME.match(body)
        role = rn.group("role") if rn else ""
        name = _unquote(rn.group("name") or "") if rn else ""
        head, sep, tail = body.partition(": ")
        text = _unquote(tail.strip()) if sep and not tail.endswith(":") else ""
        elements.append(Element(eid, ref, role, name, box, text, shown.strip()))  # type: ignore[arg-type]
    return "\n".join(lines), elements


def _unyaml(body: str) -> str:
    """Undo YAML's single quotes around a key with special characters: ``'tab "A #2"': x``."""
    if not body.startswith("'"):
        return body
    i = 1
    while i < len(body):
        if body[i] == "'":
            if body[i + 1 : i + 2] == "'":
                i += 2
                continue
            return body[1:i].replace("''", "'") + body[i + 1 :]
        i += 1
    return body


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    return text.replace('\\"', '"').replace("\\\\", "\\")
