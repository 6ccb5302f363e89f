"""The sessions of a served env: one env instance each, bounded in number, closed when idle or gone.

A session is what one WebSocket connection (or one MCP-over-HTTP client, or the HTTP endpoints'
shared episode) plays on: its own env instance, so a group's episodes on one session share that
instance exactly as they do in-process. ``Sessions`` bounds how many are open (in all and per
client), closes the env of every session that ends (its sandbox or browser context with it), and
closes sessions idle for longer than the timeout. ``envs_open`` counts envs made and not yet closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium

from turngym.core.env import TurnEnv
from turngym.core.errors import ServeError
from turngym.core.wrappers import aclose

SessionKind = Literal["ws", "mcp", "http"]
log = logging.getLogger(__name__)

#: how long closing one env may take before the session lets go of it
CLOSE_TIMEOUT = 60.0


@dataclass(eq=False)
class Session:
    """One env instance and where its episode stands."""

    env_id: str
    env: gymnasium.Env
    client: str
    kind: SessionKind
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    last_active: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    busy: bool = False
    #: called (no arguments) when the session is closed from outside (idle timeout, shutdown)
    on_evict: Callable[[str], Any] | None = None
    # the episode
    episode_id: str | None = None
    seed: int | None = None
    step_count: int = 0
    started: bool = False
    done: bool = False
    total_reward: float = 0.0
    task_id: str = ""
    instance_hash: str = ""
    tools: list[Any] = field(default_factory=list)
    #: the client asked at reset for the legal replies in every observation's metadata
    send_legal: bool = False

    @property
    def interruptible(self) -> bool:
        """Whether a timeout can interrupt the env's steps: an async env, or a sync one that runs in a thread."""
        inner = self.env.unwrapped
        return getattr(inner, "blocking", False) or getattr(type(inner), "astep", None) is not TurnEnv.astep

    def touch(self) -> None:
        self.last_active = time.monotonic()


class Sessions:
    """The open sessions of one server (every env it serves), with their limits."""

    def __init__(
        self,
        make_env: Callable[[str], gymnasium.Env],
        *,
        max_sessions: int,
        max_per_client: int | None,
        idle_timeout: float,
    ) -> None:
        self._make_env = make_env
        self.max_sessions = max_sessions
        self.max_per_client = max_per_client or max_sessions
        self.idle_timeout = idle_timeout
        self._open: dict[str, Session] = {}
        self._reserved = 0
        self.envs_open = 0
        self._reaper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._open)

    def get(self, session_id: str) -> Session | None:
        return self._open.get(session_id)

    async def open(self, env_id: str, client: str, kind: SessionKind) -> Session:
        """A new session with a fresh env; a ``ServeError`` (``CAPACITY_REACHED``, ``FACTORY_ERROR``) if none can be had."""
        active = len(self._open) + self._reserved
        if active >= self.max_sessions:
            raise ServeError(
                f"the server holds {active} sessions, its maximum (--max-sessions {self.max_sessions}): "
                "close one or raise the limit",
                "CAPACITY_REACHED",
                active_sessions=active,
                max_sessions=self.max_sessions,
            )
        mine = sum(s.client == client for s in self._open.values())
        if mine >= self.max_per_client:
            raise ServeError(
                f"client {client} holds {mine} sessions, the most one client may "
                f"(--max-sessions-per-client {self.max_per_client}): close one or raise the limit",
                "CAPACITY_REACHED",
                active_sessions=mine,
                max_sessions=self.max_per_client,
            )
        self._reserved += 1
        try:
            env = self._make_env(env_id)
        except Exception as e:
            raise ServeError(
                f"could not make {env_id}: {type(e).__name__}: {e}",
                "FACTORY_ERROR",
                factory_name=env_id,
            ) from e
        finally:
            self._reserved -= 1
        self.envs_open += 1
        session = Session(env_id=env_id, env=env, client=client, kind=kind)
        self._open[session.id] = session
        return session

    async def close(self, session: Session) -> None:
        """Close the session's env (its sandbox, its browser context); safe to call twice."""
        if self._open.pop(session.id, None) is None:
            return
        try:
            await asyncio.shield(asyncio.wait_for(aclose(session.env), CLOSE_TIMEOUT))
        except (Exception, asyncio.CancelledError) as e:  # noqa: BLE001 - a broken env must not keep the session alive
            log.warning(
                "closing %s's env %s failed: %s: %s",
                session.env_id,
                session.id,
                type(e).__name__,
                e,
            )
        finally:
            self.envs_open -= 1

    async def evict(self, session: Session, why: str) -> None:
        """Close a session from outside: tell its connection (``on_evict``), then close its env."""
        if session.on_evict is not None:
            with contextlib.suppress(Exception):
                session.on_evict(why)
        await self.close(session)

    async def close_all(self) -> None:
        await asyncio.gather(*(self.evict(s, "the server is shutting down") for s in list(self._open.values())))

    # -- the idle reaper -------------------------------------------------------------------------
    def start(self) -> None:
        if self._reaper is None and self.idle_timeout > 0:
            self._reaper = asyncio.create_task(self._reap_idle())

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        await self.close_all()

    async def _reap_idle(self) -> None:
        period = max(0.05, min(self.idle_timeout / 4, 5.0))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for s in list(self._open.values()):
                if not s.busy and now - s.last_active > self.idle_timeout:
                    await self.evict(
                        s,
                        f"idle for more than {self.idle_timeout:g} s (--idle-timeout)",
                    )
