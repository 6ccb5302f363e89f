"""``BrowserSession``: one browser context with one page, for one episode.

    snap = await session.observe(screenshot=True)                # a11y tree (ids), URL, PNG
    await session.act(BrowserAction(kind="click", ref="7"))

Isolation: each session is its own browser context (cookies, storage, cache); every request that is
not to a loopback host (127.0.0.1, localhost, ::1), a ``file:`` or a ``data:`` URL is aborted and
recorded (``url_allowed``); service workers are blocked so they cannot bypass the routing.

Errors (all ``SandboxError``, defined in ``turngym.core.errors``)::

    SandboxError
    └── PageError        the page of one session cannot go on; the episode ends, the browser lives
        ├── PageCrashed  the renderer process died
        └── PageHung     the page did not answer within the timeout (an endless script)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from turngym.core.errors import ActionError, PageCrashed, PageError, PageHung
from turngym.sandboxes.browser.a11y import Element, parse_snapshot
from turngym.sandboxes.browser.actions import BrowserAction
from turngym.sandboxes.browser.config import BrowserConfig, ContextOptions
from turngym.sandboxes.browser.set_of_marks import draw_marks

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
#: the URLs ``BrowserSession._route`` decides on: all but the schemes ``url_allowed`` always allows
_ROUTED = re.compile(r"^(?!(?:file|data|blob|about):)", re.IGNORECASE)


class PageSnapshot(BaseModel):
    """What one observation of a page found."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    url: str
    title: str = ""
    #: the accessibility tree as agents read it: one element per line, ``[12]`` ids
    tree: str = ""
    elements: dict[str, Element] = Field(default_factory=dict)
    screenshot: bytes | None = None
    som_screenshot: bytes | None = None
    #: alert/confirm/prompt texts shown since the last observation (they were answered)
    dialogs: list[str] = Field(default_factory=list)
    #: requests blocked since the last observation
    blocked: list[str] = Field(default_factory=list)
    #: popups closed since the last observation
    popups: list[str] = Field(default_factory=list)


_RETRYABLE = ("detached", "Execution context was destroyed", "navigating", "Cannot find context", "frame was")


def png_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


class BrowserSession:
    """One browser context with one page, for one episode. ``close()`` is safe to call twice."""

    def __init__(self, *, context: Any, config: BrowserConfig, options: ContextOptions) -> None:
        self.context = context
        self.config = config
        self.options = options
        self.page: Any = None
        self.crashed = False
        self.hung = False
        self.closed = False
        self._dialogs: list[str] = []
        self._blocked: list[str] = []
        self._popups: list[str] = []
        self.last: PageSnapshot | None = None
        self._id_of: dict[str, str] = {}  # Playwright ref -> the id agents see
        self._ref_of: dict[str, str] = {}
        self._title: str | None = None  # read by the last settle, for the next observation

    async def _open(self) -> None:
        # file:, data:, blob: and about: URLs are always allowed: Playwright lets them through itself, with no
        # round trip to this process (a MiniWoB++ page load was five)
        await self.context.route(_ROUTED, self._route)
        self.page = await self.context.new_page()
        self.page.set_default_timeout(self.config.action_timeout * 1000)
        self.page.set_default_navigation_timeout(self.config.navigation_timeout * 1000)
        self.page.on("dialog", self._on_dialog)
        self.page.on("crash", self._on_crash)
        self.context.on("page", self._on_popup)
        if self.options.trace_dir:
            await self.context.tracing.start(screenshots=True, snapshots=True)

    @property
    def _ms(self) -> float:
        """Playwright's own timeout for observations: just under ours, so its clearer error wins."""
        return self.config.page_timeout * 900

    @property
    def alive(self) -> bool:
        return not (self.closed or self.crashed or self.hung or self.page is None or self.page.is_closed())

    # events -------------------------------------------------------------------------------
    async def _route(self, route: Any) -> None:
        url = route.request.url
        served = aliased(url, self.options.aliases)
        if served is not None:
            await route.continue_(url=served)
        elif url_allowed(url, self.options.allowed_origins):
            await route.continue_()
        else:
            self._blocked.append(url)
            await route.abort("blockedbyclient")

    def _on_dialog(self, dialog: Any) -> None:
        self._dialogs.append(f"{dialog.type}: {dialog.message}")
        # answer at once, or the page blocks: alerts are accepted, confirms and prompts dismissed
        answer = dialog.accept() if dialog.type in ("alert", "beforeunload") else dialog.dismiss()
        asyncio.ensure_future(_quiet(answer))

    def _on_crash(self, page: Any) -> None:
        self.crashed = True

    def _on_popup(self, page: Any) -> None:
        if page is self.page:
            return
        self._popups.append(page.url)
        asyncio.ensure_future(_quiet(page.close()))

    # guards -------------------------------------------------------------------------------
    def _check(self) -> None:
        if self.crashed:
            raise PageCrashed("the page's renderer process crashed; the episode cannot go on (the next reset starts a new page)")
        if self.hung:
            raise PageHung(f"the page stopped answering (no reply within {self.config.page_timeout:g} s)")
        if not self.alive:
            raise PageError("the page is closed")

    async def _guard(self, coro: Awaitable[Any], what: str, timeout: float | None = None) -> Any:
        """Run one page operation with the page timeout; map a crash or a hang to ``PageError``."""
        self._check()
        timeout = timeout or self.config.page_timeout
        try:
            return await asyncio.wait_for(coro, timeout)
        except asyncio.TimeoutError:
            self.hung = True
            raise PageHung(
                f"the page did not answer {what} within {timeout:g} s (a script that never "
                "yields?); the episode ends. Raise BrowserConfig.page_timeout if the page is just slow."
            ) from None
        except Exception as e:
            if self.crashed or "crash" in str(e).lower():
                self.crashed = True
                raise PageCrashed(f"the page crashed during {what}; the episode ends") from None
            if "closed" in str(e) and not self.alive:
                raise PageError(f"the page was closed during {what}") from None
            raise

    async def _retrying(self, make: Callable[[], Awaitable[Any]], what: str) -> Any:
        """Retry an observation whose frame detached or navigated under it (up to 3 times)."""
        for attempt in range(4):
            try:
                return await self._guard(make(), what)
            except PageError:
                raise
            except Exception as e:
                if attempt == 3 or not any(s in str(e) for s in _RETRYABLE):
                    raise
                with contextlib.suppress(Exception):
                    await self._guard(self.page.wait_for_load_state("domcontentloaded"), "loading")
        raise AssertionError("unreachable")

    # the API ------------------------------------------------------------------------------
    async def goto(self, url: str) -> None:
        self._title = None
        await self._guard(self.page.goto(url, wait_until="load"), f"loading {url}", self.config.navigation_timeout + 5)

    async def evaluate(self, script: str, arg: Any = None) -> Any:
        """Run a JavaScript expression or function in the page (with the page timeout)."""
        self._title = None  # the script may change the title
        return await self._retrying(lambda: self.page.evaluate(script, arg), "a script")

    async def settle(self, probe: str | None = None) -> Any:
        """Wait until the page has handled the last input (a started navigation loaded, then one frame
        painted) and read the page's title and the value of ``probe`` (a JavaScript function of no
        arguments, e.g. the task's reward globals) in that same script: one round trip to the page.
        Returns the probe's value (None without a probe, or where the probe threw). Waits on the page's
        own signals, never a fixed sleep. The title is the next ``observe``'s, unless a script or a
        navigation runs in between."""
        title, value = await self._retrying(lambda: self.page.evaluate(settle_script(probe)), "a frame")
        self._title = title
        return value

    async def observe(self, *, tree: bool = True, screenshot: bool = False, som: bool = False) -> PageSnapshot:
        """The page now: URL, title, accessibility tree with ids, optional screenshot and set-of-marks."""
        self._check()
        text, elements = "", []
        if tree or som:
            raw = await self._retrying(lambda: self.page.aria_snapshot(mode="ai", boxes=som, timeout=self._ms), "an accessibility snapshot")
            text, elements = parse_snapshot(raw, self._name)
        png = None
        if screenshot or som:
            png = await self.screenshot()
        som_png = draw_marks(png, elements, self.options.device_scale_factor) if som and png else None
        title = self._title if self._title is not None else await self._retrying(self.page.title, "the title")
        self._title = None
        snap = PageSnapshot(
            url=self.page.url,
            title=title,
            tree=text,
            elements={e.id: e for e in elements},
            screenshot=png if screenshot else None,
            som_screenshot=som_png,
            dialogs=self._dialogs,
            blocked=self._blocked,
            popups=self._popups,
        )
        self._dialogs, self._blocked, self._popups = [], [], []
        self.last = snap
        return snap

    def _name(self, ref: str) -> str:
        """The id agents see for a Playwright ref: 1, 2, 3... in order of first sight, never reused."""
        eid = self._id_of.get(ref)
        if eid is None:
            plain = ref[1:] if ref[:1] == "e" and ref[1:].isdigit() else None
            # keep Playwright's number on the first page where it is free, so ids read naturally
            eid = plain if plain is not None and plain not in self._ref_of else str(self._next_id())
            self._id_of[ref], self._ref_of[eid] = eid, ref
        return eid

    def _next_id(self) -> int:
        return max((int(k) for k in self._ref_of if k.isdigit()), default=0) + 1

    async def screenshot(self) -> bytes:
        return await self._retrying(lambda: self.page.screenshot(type="png", animations="allow", timeout=self._ms), "a screenshot")

    async def act(self, action: BrowserAction, *, probe: str | None = None) -> Any:
        """Perform ``action``, then ``settle`` (which reads ``probe``'s value; returned). An action that
        cannot be done (unknown id, element not actionable, a URL that is not allowed) raises
        ``ActionError``; a crashed or hung page ``PageError``."""
        from playwright.async_api import Error as PlaywrightError

        self._check()
        if action.ref is not None and self.last is not None and action.ref not in self.last.elements:
            raise ActionError(f"there is no element [{action.ref}] on the page: use an id shown in the page tree")
        try:
            await self._guard(self._perform(action), str(action))
        except PageError:
            raise
        except PlaywrightError as e:
            if "Timeout" in str(e):
                await self._probe(str(action))  # a page that stopped answering is not the agent's fault
            raise ActionError(f"{action} failed: {_first_line(str(e))}") from None
        return await self.settle(probe)

    async def _probe(self, what: str) -> None:
        """Raise ``PageHung`` if the page does not run a trivial script in a few seconds."""
        wait = min(5.0, self.config.page_timeout)
        try:
            await asyncio.wait_for(self.page.evaluate("1"), wait)
        except asyncio.TimeoutError:
            self.hung = True
            raise PageHung(f"the page did not answer after {what} (no reply within {wait:g} s): a script that never yields?") from None
        except Exception:
            pass

    async def _perform(self, a: BrowserAction) -> None:
        page = self.page
        loc = page.locator(f"aria-ref={self._ref_of[a.ref]}") if a.ref is not None else None
        if a.kind in ("click", "hover"):
            try:
                await (loc.click() if a.kind == "click" else loc.hover())
            except Exception as e:
                # the actionability checks wait for animation frames; a starved renderer (a busy machine)
                # may not paint them in time although the element is there, visible and not covered:
                # act anyway. A covered, hidden or disabled element stays an error.
                text = str(e)
                blocked = ("intercepts pointer events", "not visible", "not enabled", "outside of the viewport")
                if "Timeout" not in text or any(b in text for b in blocked):
                    raise
                await (loc.click(force=True) if a.kind == "click" else loc.hover(force=True))
        elif a.kind == "fill":
            await loc.fill(a.text or "")
        elif a.kind == "select":
            try:
                await loc.select_option(label=a.text, timeout=self.config.action_timeout * 500)
            except Exception:
                await loc.select_option(value=a.text)
        elif a.kind == "press":
            await page.keyboard.press(a.key)
        elif a.kind == "type":
            await page.keyboard.type(a.text or "")
        elif a.kind == "scroll":
            w, h = self.options.viewport
            dx = {"left": -w * 0.8, "right": w * 0.8}.get(a.direction or "", 0.0)
            dy = {"up": -h * 0.8, "down": h * 0.8}.get(a.direction or "", 0.0)
            await page.mouse.wheel(dx, dy)
        elif a.kind == "goto":
            if not self.goto_allowed(a.url or ""):
                raise ActionError(
                    f"goto({a.url!r}) is not allowed: only http(s) URLs on 127.0.0.1/localhost"
                    + (f" or under {', '.join(self.options.goto_prefixes)}" if self.options.goto_prefixes else "")
                )
            await page.goto(a.url, wait_until="load")
        elif a.kind == "back":
            await page.go_back(wait_until="load")
        elif a.kind == "mouse_click":
            scale = self.options.device_scale_factor
            await page.mouse.click(float(a.x) / scale, float(a.y) / scale)
        # noop: nothing

    def goto_allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and url_allowed(url, self.options.allowed_origins):
            return True
        if aliased(url, self.options.aliases) is not None:
            return True
        return any(url.startswith(p) for p in self.options.goto_prefixes)

    async def close(self) -> None:
        """Close the context (and its page). Safe to call twice; never raises."""
        if self.closed:
            return
        self.closed = True
        if self.options.trace_dir:
            with contextlib.suppress(Exception):
                path = Path(self.options.trace_dir) / f"trace-{uuid.uuid4().hex[:8]}.zip"
                await asyncio.wait_for(self.context.tracing.stop(path=str(path)), 10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.context.close(), 10)


def aliased(url: str, aliases: tuple[tuple[str, str], ...]) -> str | None:
    """The URL that serves ``url`` when its origin is a shown origin of ``aliases`` (ContextOptions), else None."""
    parts = urlsplit(url)
    for shown, serving in aliases:
        if f"{parts.scheme}://{parts.netloc}" == shown:
            return serving + url[len(shown):]
    return None


def url_allowed(url: str, origins: tuple[str, ...] | None = None) -> bool:
    """May the page load ``url``? ``file:``, ``data:``, ``blob:``, ``about:`` and loopback http(s)/ws(s)
    (only ``origins``, e.g. ``("http://127.0.0.1:8123",)``, when given)."""
    parts = urlsplit(url)
    if parts.scheme in ("file", "data", "blob", "about"):
        return True
    if parts.scheme not in ("http", "https", "ws", "wss") or parts.hostname not in LOOPBACK_HOSTS:
        return False
    if origins is None:
        return True
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}" in origins


def settle_script(probe: str | None = None) -> str:
    """The page script of ``BrowserSession.settle``: after the next animation frame, ``[title, value]``, where
    value is what ``probe`` (a JavaScript function of no arguments) returns, or null where it throws (a page
    that is not the task's) or there is no probe."""
    value = f"(() => {{ try {{ return ({probe})(); }} catch (e) {{ return null; }} }})()" if probe else "null"
    return f"() => new Promise(r => requestAnimationFrame(() => r([document.title, {value}])))"


async def _quiet(aw: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):
        await aw


def _first_line(text: str) -> str:
    """Playwright's error in one line: its first line and, if any, the last step of its call log."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return text
    out = lines[0]
    steps = [ln.lstrip("- ") for ln in lines[1:] if ln.startswith("-")]
    if steps:
        out += f" (last: {steps[-1]})"
    return out[:400]
