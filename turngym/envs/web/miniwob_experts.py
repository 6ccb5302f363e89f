"""Scripted experts for MiniWoB++ tasks: each reads the goal (the page's utterance) and the page
tree of the last observation, and answers with the same actions an agent writes (``click(7)``).

They go through the whole action path (parse, ids, Playwright, the page's reward), so their success
rates test the env as much as they baseline it. ``expert(env)`` picks the task's solver.
"""

from __future__ import annotations

import inspect
import itertools
import re
from collections.abc import Callable, Iterator
from typing import Any

from turngym.core.types import Observation
from turngym.sandboxes.browser.a11y import Element

Solver = Callable[[str, "Page"], Iterator[str]]


class Page:
    """The elements of the last observation, with helpers to find them."""

    def __init__(self, env: Any) -> None:
        self.env = env

    @property
    def elements(self) -> list[Element]:
        snap = self.env.session.last
        return list(snap.elements.values()) if snap is not None else []

    def find(self, role: str, name: str | None = None, *, exact: bool = True) -> Element:
        for e in self.elements:
            if e.role == role and (name is None or (e.name == name if exact else name.lower() in e.name.lower())):
                return e
        raise LookupError(f"no {role} {name!r} on the page")

    def all(self, role: str) -> list[Element]:
        return [e for e in self.elements if e.role == role]

    def with_text(self, text: str) -> Element:
        for e in self.elements:
            if e.text == text or (e.role not in ("generic", "text") and e.name == text):
                return e
        raise LookupError(f"no element with text {text!r}")


def _id(e: Element) -> str:
    return e.id


def _quoted(goal: str) -> str:
    m = re.search(r'"([^"]*)"', goal)
    if m is None:
        raise LookupError(f"no quoted text in the goal {goal!r}")
    return m.group(1)


# -- one solver per task: a generator of actions, advanced once per observation ----------------


def click_named_button(goal: str, page: Page) -> Iterator[str]:
    yield f"click({_id(page.find('button', _quoted(goal)))})"


def click_test(goal: str, page: Page) -> Iterator[str]:
    yield f"click({_id(page.all('button')[0])})"


_VISIBLE_POINT = """(text) => {
  const el = Array.from(document.querySelectorAll('button')).find(b => b.textContent.trim() === text);
  const r = el.getBoundingClientRect();
  const shows = (x, y) => el.contains(document.elementFromPoint(x, y));
  if (shows(r.x + r.width / 2, r.y + r.height / 2)) return null;
  for (let fy = 0.1; fy < 1; fy += 0.1) for (let fx = 0.1; fx < 1; fx += 0.1)
    if (shows(r.x + r.width * fx, r.y + r.height * fy)) return [r.x + r.width * fx, r.y + r.height * fy];
  return null;
}"""


async def _click_visible(page: Page, name: str) -> list[str]:
    """click(id) where the button's centre shows; else a mouse click on a part of it that shows
    (MiniWoB++ places buttons at random and one may cover the other's centre)."""
    point = await page.env.session.evaluate(_VISIBLE_POINT, name)
    if point is None:
        return [f"click({_id(page.find('button', name))})"]
    scale = page.env.device_scale_factor
    return [f"mouse_click({point[0] * scale:.0f}, {point[1] * scale:.0f})"]


def click_test_2(goal: str, page: Page) -> Iterator[Any]:
    yield _click_visible(page, "ONE")


def click_test_transfer(goal: str, page: Page) -> Iterator[str]:
    word = re.search(r"Click button (\w+)", goal).group(1)
    yield f"click({_id(page.find('button', word))})"


def click_button_sequence(goal: str, page: Page) -> Iterator[Any]:
    yield _click_visible(page, "ONE")
    yield _click_visible(page, "TWO")


def _select_then_submit(role: str) -> Solver:
    def solve(goal: str, page: Page) -> Iterator[str]:
        m = re.search(r"Select (.*) and click Submit", goal)
        listed = m.group(1) if m else ""
        names = [] if listed in ("nothing", "") else [n.strip() for n in listed.split(", ")]
        for name in names:
            yield f"click({_id(page.find(role, name))})"
        yield f"click({_id(page.find('button', 'Submit'))})"

    return solve


def click_dialog(goal: str, page: Page) -> Iterator[str]:
    yield f"click({_id(page.find('button', 'Close'))})"


def click_dialog_2(goal: str, page: Page) -> Iterator[str]:
    label = _quoted(goal)
    yield f"click({_id(page.find('button', 'Close' if label == 'x' else label))})"


def click_tab(goal: str, page: Page) -> Iterator[str]:
    n = re.search(r"Tab #(\d+)", goal).group(1)
    yield f"click({_id(page.find('link', f'Tab #{n}'))})"


def click_collapsible(goal: str, page: Page) -> Iterator[str]:
    yield f"click({_id(page.all('tab')[0])})"
    yield f"click({_id(page.find('button', 'Submit'))})"


def enter_text(goal: str, page: Page) -> Iterator[str]:
    word = _quoted(goal)
    if "upper case" in goal:
        word = word.upper()
    elif "lower case" in goal:
        word = word.lower()
    yield f'fill({_id(page.all("textbox")[0])}, {word!r})'
    yield f"click({_id(page.find('button', 'Submit'))})"


def enter_password(goal: str, page: Page) -> Iterator[str]:
    word = _quoted(goal)
    boxes = page.all("textbox")
    yield f"fill({_id(boxes[0])}, {word!r})"
    yield f"fill({_id(boxes[1])}, {word!r})"
    yield f"click({_id(page.find('button', 'Submit'))})"


def login_user(goal: str, page: Page) -> Iterator[str]:
    user, password = re.findall(r'"([^"]*)"', goal)[:2]
    boxes = page.all("textbox")
    yield f"fill({_id(boxes[0])}, {user!r})"
    yield f"fill({_id(boxes[1])}, {password!r})"
    yield f"click({_id(page.find('button', 'Login'))})"


_ORDINALS = {"1st": 0, "2nd": 1, "3rd": 2, "4th": 3, "5th": 4}


def focus_text(goal: str, page: Page) -> Iterator[str]:
    m = re.search(r"(\d+(?:st|nd|rd|th))", goal)
    index = _ORDINALS.get(m.group(1), 0) if m else 0
    yield f"click({_id(page.all('textbox')[index])})"


def choose_list(goal: str, page: Page) -> Iterator[str]:
    option = re.search(r"Select (.*) from the list", goal).group(1)
    yield f"select({_id(page.all('combobox')[0])}, {option!r})"
    yield f"click({_id(page.find('button', 'Submit'))})"


def simple_arithmetic(goal: str, page: Page) -> Iterator[str]:
    for e in page.elements:
        m = re.fullmatch(r"(-?\d+)\s*([+x\-])\s*(-?\d+)\s*=", e.text)
        if m:
            a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
            value = a + b if op == "+" else a - b if op == "-" else a * b
            break
    else:
        raise LookupError("no arithmetic problem on the page")
    yield f"fill({_id(page.all('textbox')[0])}, {str(value)!r})"
    yield f"click({_id(page.find('button', 'Submit'))})"


_INPUT_LABELS = """() => Array.from(document.querySelectorAll('#area input[type=text]')).map(box => {
  let node = box.parentElement;
  while (node && !node.textContent.trim()) node = node.parentElement;
  return node ? node.textContent.trim().toLowerCase() : '';
})"""

_FIELD_WORDS = {"genre": ("genre",), "director": ("director", "name"), "year": ("year", "date")}


async def _multi_layouts(goal: str, page: Page) -> list[str]:
    m = re.search(r"Search for (.*) movies directed by (.*) from year (\d+)", goal)
    wanted = {"genre": m.group(1), "director": m.group(2), "year": m.group(3)}
    labels = await page.env.session.evaluate(_INPUT_LABELS)
    boxes = page.all("textbox")
    actions = []
    for box, label in zip(boxes, labels, strict=False):
        field = next((f for f, words in _FIELD_WORDS.items() if any(w in label for w in words)), None)
        if field is not None:
            actions.append(f"fill({_id(box)}, {wanted[field]!r})")
    buttons = page.all("button") or [e for e in page.elements if e.text in ("Submit", "Search", "Go!")]
    if not buttons:
        raise LookupError("no submit button")
    return [*actions, f"click({_id(buttons[-1])})"]


def multi_layouts(goal: str, page: Page) -> Iterator[Any]:
    """Fill the Genre, Year and Director fields, whatever their order and layout, then submit.
    The labels are read from the DOM (the i-th text input is the i-th textbox of the tree)."""
    yield _multi_layouts(goal, page)


SOLVERS: dict[str, Solver] = {
    "click-test": click_test,
    "click-test-2": click_test_2,
    "click-test-transfer": click_test_transfer,
    "click-button": click_named_button,
    "unicode-test": click_named_button,
    "click-button-sequence": click_button_sequence,
    "click-option": _select_then_submit("radio"),
    "click-checkboxes": _select_then_submit("checkbox"),
    "click-checkboxes-transfer": _select_then_submit("checkbox"),
    "click-dialog": click_dialog,
    "click-dialog-2": click_dialog_2,
    "click-tab": click_tab,
    "click-collapsible": click_collapsible,
    "click-collapsible-nodelay": click_collapsible,
    "enter-text": enter_text,
    "enter-text-2": enter_text,
    "enter-password": enter_password,
    "login-user": login_user,
    "focus-text": focus_text,
    "focus-text-2": focus_text,
    "choose-list": choose_list,
    "simple-arithmetic": simple_arithmetic,
    "multi-layouts": multi_layouts,
    "multi-orderings": multi_layouts,
}


def expert(env: Any) -> Callable[[Observation], str]:
    """The scripted policy of ``env``'s MiniWoB++ task (a ``MiniWoBEnv``, already reset)."""
    solver = SOLVERS.get(env.task)
    if solver is None:
        raise KeyError(f"no scripted expert for MiniWoB++ task {env.task!r}: the experts cover {', '.join(sorted(SOLVERS))}")
    page = Page(env)
    steps: Iterator[str] | None = None

    async def policy(observation: Observation) -> str:
        nonlocal steps
        if steps is None:
            steps = solver(env.goal, page)
        try:
            out = next(steps)
            if inspect.isawaitable(out):  # a plan read from the page: play it out
                plan = await out
                steps = itertools.chain(plan[1:], steps)
                return plan[0]
            return out
        except (StopIteration, LookupError, AttributeError):
            return "noop()"

    return policy
