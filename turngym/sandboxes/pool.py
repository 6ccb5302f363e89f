"""The warm pool: ready Docker sandboxes handed out at reset, returned ones cleaned in the background.

    pool = SandboxPool(config=SandboxConfig(), spare=2)
    await pool.start()                  # removes containers of dead owners, warms `spare` sandboxes
    sb = await pool.acquire()           # a clean sandbox, at once when one is ready
    ...
    pool.release(sb)                    # cleaned (processes killed, work dir and /tmp wiped) or replaced
    await pool.aclose()                 # every container removed; safe twice

The pool keeps ``spare`` ready sandboxes beyond what is leased, creating them ``create_concurrency``
at a time, never more than ``max_size`` in all. A sandbox whose clean fails or whose helper is gone
is closed and replaced, never handed out.

Envs share one pool per (event loop, config): ``SandboxPool.shared(config)`` counts its users and
``unshare`` closes it when the last one leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from turngym.core.errors import SandboxError
from turngym.sandboxes.docker import DockerSandbox, SandboxConfig
from turngym.sandboxes.reaper import docker_client, reap, remove_container

log = logging.getLogger(__name__)


class SandboxPool:
    """Ready Docker sandboxes of one config. See the module docstring."""

    _shared: ClassVar[dict[tuple[int, SandboxConfig], SandboxPool]] = {}

    def __init__(
        self,
        *,
        config: SandboxConfig | None = None,
        spare: int = 2,
        max_size: int = 64,
        create_concurrency: int = 4,
        lease_timeout: float = 300.0,
        run_id: str = "",
        reap_on_start: bool = True,
    ) -> None:
        if spare < 0 or max_size < 1:
            raise ValueError(f"SandboxPool needs spare >= 0 and max_size >= 1, got spare={spare}, max_size={max_size}")
        self.config = config or SandboxConfig()
        self.spare = spare
        self.max_size = max_size
        self.run_id = run_id
        self.lease_timeout = lease_timeout
        self.reap_on_start = reap_on_start
        self._create_sem = asyncio.Semaphore(create_concurrency)
        self._ready: deque[DockerSandbox] = deque()
        self._leased: set[DockerSandbox] = set()
        self._waiters: deque[asyncio.Future[DockerSandbox]] = deque()
        self._creating = 0
        self._cleaning = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._client: Any = None
        self._started = False
        self._closed = False
        self._users = 0
        self._key: tuple[int, SandboxConfig] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.created = 0
        self.replaced = 0
        self.uid = uuid.uuid4().hex[:12]

    # -- sharing between envs ---------------------------------------------------------------------
    @classmethod
    async def shared(cls, config: SandboxConfig, **options: Any) -> SandboxPool:
        """The pool of ``config`` on the running event loop, started, with one more user."""
        loop = asyncio.get_running_loop()
        key = (id(loop), config)
        pool = cls._shared.get(key)
        if pool is None or pool._closed or pool._loop is not loop:  # (ids of dead loops get reused)
            pool = cls._shared[key] = cls(config=config, **options)
            pool._key = key
            pool._loop = loop
        pool._users += 1
        try:
            await pool.start()
        except BaseException:
            await pool.unshare()
            raise
        return pool

    async def unshare(self) -> None:
        """One user fewer; the last one out closes the pool."""
        self._users -= 1
        if self._users <= 0:
            if self._key is not None and SandboxPool._shared.get(self._key) is self:
                del SandboxPool._shared[self._key]
            await self.aclose()

    # -- life cycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Reap containers of dead owners (once) and begin warming ``spare`` sandboxes."""
        if self._closed:
            raise SandboxError("this SandboxPool is closed: make a new one")
        if self._started:
            return
        self._started = True
        self._client = await asyncio.to_thread(docker_client)
        if self.reap_on_start:
            gone = await asyncio.to_thread(reap, self._client)
            if gone:
                log.info("removed %d turngym containers of dead owners", len(gone))
        self._top_up()

    async def aclose(self) -> None:
        """Remove every container of the pool (leased ones too). Safe twice."""
        if self._closed:
            return
        self._closed = True
        for fut in self._waiters:
            if not fut.done():
                fut.set_exception(SandboxError("the SandboxPool was closed while waiting for a sandbox"))
        self._waiters.clear()
        boxes = [*self._ready, *self._leased]
        self._ready.clear()
        self._leased.clear()
        await asyncio.gather(*(sb.close() for sb in boxes), return_exceptions=True)
        # sandboxes being created or cleaned close themselves when they finish (the pool is closed)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while self._tasks:
            if loop.time() >= deadline:
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                break
            await asyncio.wait(list(self._tasks), timeout=deadline - loop.time())
        if self._client is not None:  # whatever a cancelled creation left behind
            await asyncio.to_thread(_sweep, self._client, self.uid)

    async def __aenter__(self) -> SandboxPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- leasing ----------------------------------------------------------------------------------
    async def acquire(self, timeout: float | None = None) -> DockerSandbox:
        """A clean, healthy sandbox; waits for one (up to ``timeout`` seconds, by default the pool's
        ``lease_timeout``) when none is ready."""
        timeout = self.lease_timeout if timeout is None else timeout
        await self.start()
        while self._ready:
            sb = self._ready.popleft()
            if sb.healthy:
                self._lease(sb)
                return sb
            self._retire(sb)
        fut: asyncio.Future[DockerSandbox] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._top_up()
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise SandboxError(
                f"no sandbox became ready within {timeout}s ({self.stats()}, max_size={self.max_size}): "
                "envs that are still open hold their sandboxes until reset or close; close the envs "
                "you no longer use, or raise max_size"
            ) from None
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self.release(fut.result())  # won a sandbox while being cancelled: give it back
            raise
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[DockerSandbox]:
        """``async with pool.lease() as sb:`` acquire, then release however the block ends."""
        sb = await self.acquire()
        try:
            yield sb
        finally:
            self.release(sb)

    def release(self, sb: DockerSandbox) -> None:
        """Give a sandbox back: it is cleaned in the background, then ready again (or replaced)."""
        self._leased.discard(sb)
        if self._closed:
            self._spawn(sb.close())
            return
        self._cleaning += 1
        self._spawn(self._clean(sb))

    def stats(self) -> dict[str, int]:
        return {
            "ready": len(self._ready),
            "leased": len(self._leased),
            "creating": self._creating,
            "cleaning": self._cleaning,
            "waiting": len(self._waiters),
            "created": self.created,
            "replaced": self.replaced,
        }

    # -- internals --------------------------------------------------------------------------------
    def _lease(self, sb: DockerSandbox) -> None:
        self._leased.add(sb)
        self._top_up()

    def _total(self) -> int:
        return len(self._ready) + len(self._leased) + self._creating + self._cleaning

    def _top_up(self) -> None:
        if self._closed:
            return
        want = self.spare + len(self._waiters)
        while len(self._ready) + self._creating + self._cleaning < want and self._total() < self.max_size:
            self._creating += 1
            self._spawn(self._create())

    def _offer(self, sb: DockerSandbox) -> None:
        if self._closed:
            self._spawn(sb.close())
            return
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                self._leased.add(sb)
                fut.set_result(sb)
                return
        self._ready.append(sb)

    async def _create(self) -> None:
        try:
            async with self._create_sem:
                sb = await DockerSandbox.create(
                    config=self.config, run_id=self.run_id, client=self._client, labels={"turngym.pool": self.uid}
                )
            self.created += 1
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("creating a sandbox failed: %s", e)
            if self._waiters:  # nobody would ever wake them otherwise
                fut = self._waiters.popleft()
                if not fut.done():
                    fut.set_exception(e if isinstance(e, SandboxError) else SandboxError(str(e)))
            return
        finally:
            self._creating -= 1
        self._offer(sb)
        self._top_up()

    async def _clean(self, sb: DockerSandbox) -> None:
        ok = False
        try:
            if sb.healthy:
                await sb.reset()
                ok = sb.healthy
        except SandboxError as e:
            log.warning("%s", e)
        finally:
            self._cleaning -= 1
        if ok:
            self._offer(sb)
        else:
            self._retire(sb)
        self._top_up()

    def _retire(self, sb: DockerSandbox) -> None:
        self.replaced += 1
        self._spawn(sb.close())
        self._top_up()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _sweep(client: Any, pool_uid: str) -> None:
    for c in client.api.containers(all=True, filters={"label": f"turngym.pool={pool_uid}"}):
        remove_container(client, c["Id"])
