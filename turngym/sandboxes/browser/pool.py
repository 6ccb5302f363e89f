"""``SessionPool``: browser sessions made ahead of time, so an episode's reset rarely waits for a new
context and page. A pool may be shared by the envs of one browser that make the same pages
(``BrowserSandbox.shared_pool``): a session made ahead for one serves whichever resets first, so envs that
play one episode each (a rollout runner's workers) do not each leave ``size`` unused pages behind."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from turngym.core.errors import SandboxError
from turngym.sandboxes.browser.config import ContextOptions
from turngym.sandboxes.browser.session import BrowserSession

if TYPE_CHECKING:
    from turngym.sandboxes.browser.sandbox import BrowserSandbox


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
        #: the users of a shared pool (``BrowserSandbox.shared_pool``); ``release`` closes it at 0
        self.refs = 0

    @property
    def closed(self) -> bool:
        return self._closed

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
        # a session that failed to start (browser died, page load failed) or whose page is gone (made in a browser
        # that died since: every one made ahead then) is replaced
        for _ in range(len(self._pending) + 3):
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

    async def release(self) -> None:
        """Drop one user of a shared pool; the last one closes it."""
        self.refs -= 1
        if self.refs <= 0:
            self.sandbox.forget_pool(self)
            await self.close()

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
