"""``BrowserSandbox``: one Chromium process (and its Playwright driver) per owner, shared by the
sessions of one event loop; it makes sessions (``new_session``) and session pools (``pool``).

Cleanup: the Chromium process group is recorded in a pid file (``reaper``); each launch first kills
the browsers of owners that are gone, and an ``atexit`` hook kills ours if the interpreter exits
without ``close``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable
from pathlib import Path
from typing import Any

from turngym.core.errors import SandboxError
from turngym.sandboxes.browser.config import BrowserConfig, ContextOptions
from turngym.sandboxes.browser.pool import SessionPool
from turngym.sandboxes.browser.reaper import cmdline, find_marked, kill_group, reap_orphans, runtime_dir
from turngym.sandboxes.browser.session import BrowserSession
from turngym.sandboxes.reaper import start_ticks

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
        self._pools: dict[Hashable, SessionPool] = {}

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
        self._pids = [p for p in find_marked(self._marker) if "--type=" not in cmdline(p)]
        self._write_pid_file()
        _LIVE.add(self)

    def _write_pid_file(self) -> None:
        rec = {
            "pids": self._pids,
            "marker": self._marker,
            "owner": os.getpid(),
            "owner_start": start_ticks(os.getpid()),
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
            if self._marker in cmdline(pid):
                kill_group(pid)
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

    def shared_pool(
        self,
        key: Hashable,
        *,
        prepare: Callable[[BrowserSession], Awaitable[None]] | None = None,
        options: ContextOptions | None = None,
        size: int = 2,
    ) -> SessionPool:
        """The pool of ``key`` in this browser, made on first use and shared by every caller of the same key
        (``release`` it; the last release closes it). Callers of one key must make the same pages: the first
        caller's ``prepare`` and ``options`` serve them all; the pool keeps the largest ``size`` asked for."""
        pool = self._pools.get(key)
        if pool is None or pool.closed:
            pool = self._pools[key] = self.pool(prepare=prepare, options=options, size=size)
        pool.size = max(pool.size, size)
        pool.refs += 1
        return pool

    def forget_pool(self, pool: SessionPool) -> None:
        """Take ``pool`` out of the shared pools (it is being closed)."""
        for key in [k for k, v in self._pools.items() if v is pool]:
            del self._pools[key]


_LIVE: set[BrowserSandbox] = set()


@atexit.register
def _kill_live_browsers() -> None:
    for sandbox in list(_LIVE):
        sandbox.kill()

