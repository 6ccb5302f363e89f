"""The browser sandbox: Playwright's async API driving one Chromium per owner, one context per episode.

    browser = await BrowserSandbox.shared(BrowserConfig())     # one Chromium per event loop, ref-counted
    pool = browser.pool(prepare=load_task, size=2)               # contexts+pages made ahead of time
    session = await pool.take()                                  # a fresh context with a ready page
    snap = await session.observe(screenshot=True)                # a11y tree (ids), URL, PNG
    await session.act(BrowserAction(kind="click", ref="e7"))
    await session.close(); await pool.close(); await browser.release()

Isolation: each session is its own browser context (cookies, storage, cache); every request that is
not to a loopback host (127.0.0.1, localhost, ::1), a ``file:`` or a ``data:`` URL is aborted and
recorded; service workers are blocked so they cannot bypass the routing.

Cleanup: the Chromium process group is recorded in a pid file (runtime dir, with the owning process
and its start time). Each launch first kills the browsers of owners that are gone (a runner
that was SIGKILLed), and an ``atexit`` hook kills ours if the interpreter exits without ``close``.

Errors (all ``SandboxError``)::

    SandboxError
    └── PageError        the page of one session cannot go on; the episode ends, the browser lives
        ├── PageCrashed  the renderer process died
        └── PageHung     the page did not answer within the timeout (an endless script)
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import io
import json
import logging
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from turngym.core.errors import ActionError, SandboxError
from turngym.sandboxes.browser_a11y import Element, parse_snapshot
from turngym.sandboxes.browser_actions import BrowserAction

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})

#: Chromium switches for a quiet, offline, headless browser in a container
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--mute-audio",
)


class PageError(SandboxError):
    """The page of one session cannot go on (the episode ends; the browser and the run go on)."""


class PageCrashed(PageError):
    pass


class PageHung(PageError):
    pass


class BrowserConfig(BaseModel):
    """How the browser is launched and how long pages may take. Times in seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    #: Chromium binary; None finds one ($TURNGYM_CHROMIUM, chromium, chromium-browser, google-chrome)
    executable_path: str | None = None
    headless: bool = True
    extra_args: tuple[str, ...] = ()
    launch_timeout: float = 60.0
    #: an element action (click, fill...) that cannot run within this time fails as an invalid action
    action_timeout: float = 5.0
    navigation_timeout: float = 30.0
    #: a page that does not answer an observation or a script within this time is hung
    page_timeout: float = 20.0
    #: where pid files live; None: $XDG_RUNTIME_DIR/turngym or /tmp/turngym-<uid>
    runtime_dir: str | None = None
    #: at most this many sessions made ahead of time in all pools of one browser together (each is a
    #: renderer process); past it, a pool makes its sessions on demand
    max_warm: int = Field(default=12, ge=0)


class ContextOptions(BaseModel):
    """Per-session browser-context options (one set per pool)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    viewport: tuple[int, int] = (800, 600)
    device_scale_factor: float = 1.0
    #: extra URL prefixes the agent may ``goto`` besides loopback http(s) (e.g. a task's file:// dir)
    goto_prefixes: tuple[str, ...] = ()
    #: http(s) origins the page may reach (``http://127.0.0.1:8123``); None: any loopback origin
    allowed_origins: tuple[str, ...] | None = None
    #: record a Playwright trace per session into this directory (slow; for debugging)
    trace_dir: str | None = None


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium binary to drive: ``explicit``, $TURNGYM_CHROMIUM, or the first on PATH."""
    for cand in (explicit, os.environ.get("TURNGYM_CHROMIUM")):
        if cand:
            return cand
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None  # Playwright's own download, if installed


# -- pid files and the reaper -----------------------------------------------------------------


def runtime_dir(config: BrowserConfig | None = None) -> Path:
    base = (config.runtime_dir if config else None) or os.environ.get("XDG_RUNTIME_DIR")
    path = Path(base) / "turngym" / "browsers" if base else Path(tempfile.gettempdir()) / f"turngym-{os.getuid()}" / "browsers"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _proc_start(pid: int) -> str | None:
    """The start time of ``pid`` (field 22 of /proc/PID/stat), so a recycled pid is not mistaken."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _find_marked(marker: str) -> list[int]:
    """Pids of the processes whose command line carries ``marker`` (the browser's main process)."""
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and marker in _cmdline(int(entry.name)):
            out.append(int(entry.name))
    return out


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def reap_orphans(config: BrowserConfig | None = None) -> list[int]:
    """Kill the browsers whose owning process is gone; returns their pids. Safe to call any time."""
    killed = []
    for file in runtime_dir(config).glob("*.json"):
        try:
            rec = json.loads(file.read_text())
        except (OSError, ValueError):
            file.unlink(missing_ok=True)
            continue
        owner_alive = _proc_start(rec["owner"]) == rec.get("owner_start")
        if owner_alive:
            continue
        for pid in rec.get("pids", []):
            if rec["marker"] in _cmdline(pid):  # not a recycled pid
                _kill_group(pid)
                killed.append(pid)
        file.unlink(missing_ok=True)
    if killed:
        log.warning("killed %d orphaned Chromium process(es) of a finished owner: %s", len(killed), killed)
    return killed


# -- the browser ------------------------------------------------------------------------------


class BrowserSandbox:
    """One Chromium process (and its Playwright driver), shared by the sessions of one event loop."""

    _shared: dict[tuple[int, str], BrowserSandbox] = {}  # noqa: RUF012 - registry keyed by loop

    def __init__(self, *, config: BrowserConfig | None = None) -> None:
        self.config = config or BrowserConfig()
        self._pw: Any = None
        self._browser: Any = None
        self._refs = 0
        self._lock = asyncio.Lock()
        self._marker = f"--turngym-owner={os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._pid_file: Path | None = None
        self._pids: list[int] = []
        self._closed = False
        #: sessions being made ahead of time or ready in pools (bounded by ``config.max_warm``)
        self.warm = 0

    # lifecycle ----------------------------------------------------------------------------
    @classmethod
    async def shared(cls, config: BrowserConfig | None = None) -> BrowserSandbox:
        """The started browser of this event loop for ``config`` (ref-counted: ``release`` it)."""
        config = config or BrowserConfig()
        key = (id(asyncio.get_running_loop()), config.model_dump_json())
        sandbox = cls._shared.get(key)
        if sandbox is None or sandbox._closed:
            sandbox = cls._shared[key] = cls(config=config)
        sandbox._refs += 1
        try:
            await sandbox.ensure_started()
        except BaseException:
            sandbox._refs -= 1
            raise
        return sandbox

    async def release(self) -> None:
        """Drop one reference from ``shared``; the last one closes the browser."""
        self._refs -= 1
        if self._refs <= 0:
            for key, value in list(self._shared.items()):
                if value is self:
                    del self._shared[key]
            await self.close()

    @property
    def connected(self) -> bool:
        return self._browser is not None and self._browser.is_connected()

    @property
    def pids(self) -> list[int]:
        """The Chromium main process id(s) (each the leader of its process group)."""
        return list(self._pids)

    async def ensure_started(self) -> None:
        """Launch Chromium if it is not running (first use, or after it died)."""
        async with self._lock:
            if self.connected:
                return
            await self._stop()
            self._closed = False
            await self._launch()

    async def _launch(self) -> None:
        try:
            from playwright.async_api import async_playwright
        except ImportError:
            raise SandboxError(
                "the browser sandbox needs Playwright: pip install 'turngym[browser]' (make setup does)"
            ) from None
        reap_orphans(self.config)
        exe = find_chromium(self.config.executable_path)
        self._pw = await async_playwright().start()
        try:
            self._browser = await self._pw.chromium.launch(
                executable_path=exe,
                headless=self.config.headless,
                args=[*CHROMIUM_ARGS, *self.config.extra_args, self._marker],
                timeout=self.config.launch_timeout * 1000,
            )
        except Exception as e:
            await self._stop()
            raise SandboxError(
                f"Chromium ({exe or 'Playwright bundled'}) did not start: {type(e).__name__}: {str(e)[:400]}. "
                "Install it with `apt-get install chromium` or set TURNGYM_CHROMIUM to a Chromium binary."
            ) from e
        self._pids = [p for p in _find_marked(self._marker) if "--type=" not in _cmdline(p)]
        self._write_pid_file()
        _LIVE.add(self)

    def _write_pid_file(self) -> None:
        rec = {
            "pids": self._pids,
            "marker": self._marker,
            "owner": os.getpid(),
            "owner_start": _proc_start(os.getpid()),
            "started": time.time(),
        }
        self._pid_file = runtime_dir(self.config) / f"{os.getpid()}-{self._marker[-12:]}.json"
        self._pid_file.write_text(json.dumps(rec))

    async def _stop(self) -> None:
        browser, pw = self._browser, self._pw
        self._browser = self._pw = None
        if browser is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(browser.close(), 10)
        if pw is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pw.stop(), 10)
        self.kill()

    def kill(self) -> None:
        """Kill the Chromium process group now (sync; what the atexit hook calls)."""
        for pid in self._pids:
            if self._marker in _cmdline(pid):
                _kill_group(pid)
        self._pids = []
        if self._pid_file is not None:
            self._pid_file.unlink(missing_ok=True)
            self._pid_file = None
        _LIVE.discard(self)

    async def close(self) -> None:
        """Close the browser and every context in it. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            await self._stop()

    async def __aenter__(self) -> BrowserSandbox:
        await self.ensure_started()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # sessions -----------------------------------------------------------------------------
    async def new_session(
        self,
        options: ContextOptions | None = None,
        prepare: Callable[[BrowserSession], Awaitable[None]] | None = None,
    ) -> BrowserSession:
        """A new context with one page, set up by ``prepare`` (e.g. load the task page)."""
        await self.ensure_started()
        options = options or ContextOptions()
        w, h = options.viewport
        context = await self._browser.new_context(
            viewport={"width": w, "height": h},
            device_scale_factor=options.device_scale_factor,
            service_workers="block",
            accept_downloads=False,
        )
        session = BrowserSession(context=context, config=self.config, options=options)
        try:
            await session._open()
            if prepare is not None:
                await asyncio.wait_for(prepare(session), self.config.navigation_timeout + 10)
                # warm the page's Playwright scripts now (in the pool, ahead of time): the first
                # accessibility snapshot of a page costs ~0.3 s, later ones ~10 ms. The default mode
                # assigns no element refs, so the ids agents see are unchanged.
                await session._guard(session.page.locator(":root").aria_snapshot(timeout=session._ms), "a warm-up snapshot")
        except BaseException:
            await session.close()
            raise
        return session

    def pool(
        self,
        *,
        prepare: Callable[[BrowserSession], Awaitable[None]] | None = None,
        options: ContextOptions | None = None,
        size: int = 2,
    ) -> SessionPool:
        """A pool that keeps ``size`` sessions made ahead of time (see ``SessionPool``)."""
        return SessionPool(sandbox=self, prepare=prepare, options=options or ContextOptions(), size=size)


_LIVE: set[BrowserSandbox] = set()


@atexit.register
def _kill_live_browsers() -> None:
    for sandbox in list(_LIVE):
        sandbox.kill()


class SessionPool:
    """Keeps ``size`` sessions being made in the background, so ``take`` rarely waits for a new
    context and page (~0.5 s) and a reset costs only the task's own set-up."""

    def __init__(
        self,
        *,
        sandbox: BrowserSandbox,
        prepare: Callable[[BrowserSession], Awaitable[None]] | None,
        options: ContextOptions,
        size: int,
    ) -> None:
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.sandbox, self.prepare, self.options, self.size = sandbox, prepare, options, size
        self._pending: list[asyncio.Task[BrowserSession]] = []
        self._closed = False

    def _spawn(self) -> None:
        self.sandbox.warm += 1
        self._pending.append(asyncio.ensure_future(self.sandbox.new_session(self.options, self.prepare)))

    def _pop(self, task: asyncio.Task[BrowserSession]) -> None:
        self._pending.remove(task)
        self.sandbox.warm -= 1

    def fill(self) -> None:
        """Start making sessions until ``size`` are ready or on their way (within the browser's cap)."""
        while not self._closed and len(self._pending) < self.size and self.sandbox.warm < self.sandbox.config.max_warm:
            self._spawn()

    async def take(self) -> BrowserSession:
        """A ready session (made ahead where possible); refills the pool behind it."""
        if self._closed:
            raise SandboxError("the session pool is closed: make a new one with BrowserSandbox.pool()")
        if not self._pending:
            self._spawn()
        last_error: BaseException | None = None
        for _ in range(3):  # a session that failed to start (browser died, page load failed) is retried
            # prefer a session that is already done
            ready = next((t for t in self._pending if t.done()), self._pending[0])
            self._pop(ready)
            self.fill()
            try:
                session = await ready
            except asyncio.CancelledError:
                raise
            except Exception as e:
                last_error = e
                await self.sandbox.ensure_started()
                if not self._pending:
                    self._spawn()
                continue
            if session.alive:
                return session
            await session.close()
            if not self._pending:
                self._spawn()
        raise SandboxError(f"could not make a browser session: {type(last_error).__name__}: {last_error}")

    async def close(self) -> None:
        """Close the sessions made ahead. Safe to call twice."""
        self._closed = True
        pending, self._pending = self._pending, []
        self.sandbox.warm -= len(pending)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(BaseException):
                session = await task
                await session.close()


# -- one session: a context and its page ------------------------------------------------------


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

    async def _open(self) -> None:
        await self.context.route("**/*", self._route)
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
        if url_allowed(url, self.options.allowed_origins):
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
        await self._guard(self.page.goto(url, wait_until="load"), f"loading {url}", self.config.navigation_timeout + 5)

    async def evaluate(self, script: str, arg: Any = None) -> Any:
        """Run a JavaScript expression or function in the page (with the page timeout)."""
        return await self._retrying(lambda: self.page.evaluate(script, arg), "a script")

    async def settle(self) -> None:
        """Wait until the page has handled the last input: a started navigation loaded, then one frame
        painted. Waits on the page's own signals, never a fixed sleep."""
        await self._retrying(
            lambda: self.page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(document.readyState)))"),
            "a frame",
        )

    async def observe(self, *, tree: bool = True, screenshot: bool = False, som: bool = False) -> PageSnapshot:
        """The page now: URL, title, accessibility tree with ids, optional screenshot and set-of-marks."""
        self._check()
        text, elements = "", []
        if tree or som:
            raw = await self._retrying(lambda: self.page.aria_snapshot(mode="ai", boxes=som, timeout=self._ms), "an accessibility snapshot")
            text, elements = parse_snapshot(raw, self._name)
        png = None
        if screenshot or som:
            png = await self._retrying(lambda: self.page.screenshot(type="png", animations="allow", timeout=self._ms), "a screenshot")
        som_png = draw_marks(png, elements, self.options.device_scale_factor) if som and png else None
        snap = PageSnapshot(
            url=self.page.url,
            title=await self._retrying(self.page.title, "the title"),
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
        return await self._retrying(lambda: self.page.screenshot(type="png", timeout=self._ms), "a screenshot")

    async def act(self, action: BrowserAction) -> None:
        """Perform ``action``. An action that cannot be done (unknown id, element not actionable,
        a URL that is not allowed) raises ``ActionError``; a crashed or hung page ``PageError``."""
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
        await self.settle()

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


def draw_marks(png: bytes, elements: list[Element], scale: float) -> bytes:
    """Set-of-marks: the screenshot with each element's box outlined and labelled with its id."""
    from PIL import Image, ImageDraw

    img = Image.open(io.BytesIO(png)).convert("RGB")
    draw = ImageDraw.Draw(img)
    for e in elements:
        if e.box is None or e.box[2] <= 0 or e.box[3] <= 0 or e.role in ("generic", "text", "paragraph"):
            continue
        x, y, w, h = (v * scale for v in e.box)
        draw.rectangle([x, y, x + w, y + h], outline=(255, 0, 64), width=max(1, int(scale)))
        label = e.id
        tw = 6 * len(label) + 4
        draw.rectangle([x, y, x + tw, y + 11], fill=(255, 0, 64))
        draw.text((x + 2, y), label, fill=(255, 255, 255))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


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
