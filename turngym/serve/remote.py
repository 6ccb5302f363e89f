"""``remote/<url>`` envs: a ``TurnEnv`` that plays an env served by ``turngym serve`` (or any server of
the OpenEnv wire protocol that speaks turngym's payloads, ``wire.py``).

    env = turngym.make("remote/ws://127.0.0.1:8000")              # the first env the server serves
    env = turngym.make("remote/ws://host:8000/turngym/Wordle-v0", token="...")

Sync and async alike (``reset``/``step`` run ``areset``/``astep`` on the env's private loop), so eval,
train and ``play`` work on it unchanged. One WebSocket session holds one env instance on the server,
so the episodes of a group played on this env share that instance as they would in-process.

A dropped socket never loses more than the episode in flight: a step whose reply is lost raises
``RemoteEnvError`` (the rollout runner records it as that episode's error and goes on), and the next
``reset`` opens a fresh session, retrying with back-off while the server is away (a reset is safe to
repeat). The description and action format (for the agent's system prompt) come from ``/metadata``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import gymnasium

from turngym.core.actions import ActionFormat
from turngym.core.env import ResetResult, StepResult, TurnEnv
from turngym.core.errors import ConfigError, RemoteEnvError
from turngym.core.types import Action
from turngym.serve import wire

PREFIX = "remote/"
TOKEN_ENV = "TURNGYM_SERVE_TOKEN"
#: seconds between tries to reach a server that is away, at a reset (then the last one repeats)
BACKOFF = (0.2, 0.5, 1.0, 2.0, 4.0)


#: /metadata per (server, token): what the env is does not change while its server runs
_METADATA: dict[tuple[str, str | None], dict[str, Any]] = {}


class RemoteFormat(ActionFormat):
    """The served env's action format, as its server describes it: the reply goes to the server as
    written, and the server's env parses it (an invalid action is answered there, as in-process)."""

    def __init__(self, name: str, description: str, pattern: str | None) -> None:
        self.name, self._description, self._pattern = name, description, pattern

    def parse(self, action: Action) -> Action:
        return action

    def describe(self) -> str:
        return self._description

    def pattern(self) -> str | None:
        return self._pattern


def base_urls(url: str) -> tuple[str, str]:
    """(http base, WebSocket URL) of a served env given as ``ws://``, ``wss://``, ``http://`` or ``https://``,
    with or without a trailing ``/ws``."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https", "http": "http", "https": "https"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(
            f"{url!r} is not a served env's URL: write ws://HOST:PORT (or http://, wss://, https://), "
            "e.g. remote/ws://127.0.0.1:8000"
        )
    path = parts.path.rstrip("/")
    path = path.removesuffix("/ws")
    http = urlunsplit((scheme, parts.netloc, path, "", ""))
    ws = urlunsplit(("wss" if scheme == "https" else "ws", parts.netloc, path + "/ws", "", ""))
    return http, ws


class RemoteEnv(TurnEnv):
    """A served env, played over one WebSocket session at a time (see the module docstring)."""

    snapshot_unsupported = "its state lives in the server's env, in another process (turngym serve)"

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        connect_timeout: float = 10.0,
        step_timeout: float | None = 660.0,
        retries: int = 5,
        legal_actions: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.url = url
        self.http_url, self.ws_url = base_urls(url)
        self.token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self.connect_timeout, self.step_timeout, self.retries = connect_timeout, step_timeout, retries
        #: ask the server for the env's legal replies with every observation (for random agents; they can be long)
        self.want_legal = legal_actions
        self._legal: list[str] | None = None
        self.metadata_served = self._fetch_metadata()
        self.description = self.metadata_served.get("description", "")
        fmt = self.metadata_served.get("action_format") or {}
        self.action_format = RemoteFormat(
            fmt.get("name", "remote"),
            fmt.get("describe", "Reply in plain text."),
            fmt.get("pattern"),
        )
        self._ws: Any = None
        self._ws_loop: asyncio.AbstractEventLoop | None = None
        self._in_episode = False

    # -- the four entry points (async; the sync pair comes from TurnEnv) ---------------------------
    async def areset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        gymnasium.Env.reset(self, seed=seed)  # seeds self.np_random, as Gymnasium's checker expects
        data: dict[str, Any] = {}
        if seed is not None:
            data["seed"] = seed
        if options:
            data["options"] = options
        if self.want_legal:
            data["legal_actions"] = True
        self._in_episode = False
        errors: list[str] = []
        for attempt in range(self.retries + 1):
            try:
                ws = await self._connected()
                reply = await self._call(ws, {"type": "reset", "data": data})
            except RemoteEnvError as e:
                if not e.retryable:
                    raise
                # the socket went away or the server refused for now: a fresh session
                errors.append(str(e))
                await self._drop()
                if attempt < self.retries:
                    await asyncio.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
                continue
            self._in_episode = True
            self._legal = (reply.get("metadata") or {}).get("legal_actions")
            return wire.reset_result_of(reply)
        raise RemoteEnvError(
            f"cannot reset {self.ws_url} after {self.retries + 1} tries ({errors[-1]}); is `turngym serve` running there?"
        )

    async def astep(self, action: Action) -> StepResult:
        if not self._in_episode or self._ws is None:
            raise RemoteEnvError(f"{self.ws_url}: step without an episode: call reset first")
        if self._ws_loop is not asyncio.get_running_loop():
            raise RemoteEnvError(f"{self.ws_url}: step on another event loop than the reset's: reset again there")
        try:
            reply = await self._call(self._ws, {"type": "step", "data": wire.action_data(action)})
        except RemoteEnvError as e:
            if not e.retryable:
                raise
            await self._drop()
            self._in_episode = False
            raise RemoteEnvError(
                f"{self.ws_url}: the connection was lost during a step ({e}): this episode ends here, "
                "the next reset opens a new session"
            ) from None
        result = wire.step_result_of(reply)
        self._legal = (reply.get("metadata") or {}).get("legal_actions")
        if result[2] or result[3]:
            self._in_episode = False
        return result

    async def aclose(self) -> None:
        ws, self._ws = self._ws, None
        self._in_episode = False
        if ws is not None and self._ws_loop is asyncio.get_running_loop():
            with contextlib.suppress(Exception):
                await ws.send(json.dumps({"type": "close"}))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)
        self._ws_loop = None

    def legal_actions(self) -> list[str] | None:
        """The served env's legal replies now, where ``make(..., legal_actions=True)`` asked for them."""
        return self._legal

    def close(self) -> None:
        """Close the session (a no-op where none is open, so it is safe inside a running event loop too)."""
        if self._ws is not None:
            super().close()
        elif self._loop is not None:
            self._loop.close()
            self._loop = None

    # -- internals ------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _fetch_metadata(self) -> dict[str, Any]:
        """GET /metadata (once per server and token in this process), retried with back-off while the server
        is away (a restart between episodes)."""
        import time

        import httpx

        key = (self.http_url, self.token)
        if key in _METADATA:
            return _METADATA[key]
        for attempt in range(self.retries + 1):
            try:
                # plain http needs no TLS context (building one costs ~0.1-0.3 s, at every env a worker makes)
                r = httpx.get(
                    f"{self.http_url}/metadata",
                    headers=self._headers(),
                    timeout=self.connect_timeout,
                    verify=self.http_url.startswith("https:"),
                )
                break
            except httpx.HTTPError as e:
                if attempt == self.retries:
                    raise RemoteEnvError(
                        f"cannot reach {self.http_url}/metadata ({type(e).__name__}: {e}): start the server first "
                        "(`turngym serve ENV_ID --port PORT`) or fix the URL"
                    ) from None
                time.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
        if r.status_code == 401:
            raise RemoteEnvError(f"{self.http_url} wants a token: pass token=... to make() or set {TOKEN_ENV}")
        if r.status_code != 200:
            raise RemoteEnvError(f"{self.http_url}/metadata answered HTTP {r.status_code}: is this a turngym server?")
        _METADATA[key] = r.json()
        return _METADATA[key]

    async def _connected(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._ws is not None and self._ws_loop is loop and self._ws.state.name == "OPEN":
            return self._ws
        await self._drop()
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        try:
            self._ws = await connect(
                self.ws_url,
                additional_headers=self._headers(),
                open_timeout=self.connect_timeout,
                max_size=None,
                proxy=None,
            )
        except InvalidStatus as e:
            if e.response.status_code == 401:
                raise RemoteEnvError(
                    f"{self.ws_url} refused the token: pass token=... to make() or set {TOKEN_ENV}"
                ) from None
            raise RemoteEnvError(f"HTTP {e.response.status_code} at connect", retryable=True) from None
        except (TimeoutError, OSError) as e:
            raise RemoteEnvError(f"{type(e).__name__}: {e}", retryable=True) from None
        self._ws_loop = loop
        return self._ws

    async def _call(self, ws: Any, message: dict[str, Any]) -> dict[str, Any]:
        from websockets.exceptions import ConnectionClosed

        try:
            await ws.send(json.dumps(message))
            raw = await asyncio.wait_for(ws.recv(), self.step_timeout)
        except ConnectionClosed as e:
            raise RemoteEnvError(f"connection closed ({e})", retryable=True) from None
        except TimeoutError:
            raise RemoteEnvError(f"no reply in {self.step_timeout:g} s", retryable=True) from None
        reply = json.loads(raw)
        if reply.get("type") == "error":
            err = reply.get("data", {})
            if err.get("code") in ("CAPACITY_REACHED", "SESSION_ERROR"):
                raise RemoteEnvError(f"{err.get('code')}: {err.get('message')}", retryable=True)
            raise RemoteEnvError(f"{self.ws_url} answered {err.get('code')}: {err.get('message')}")
        return reply.get("data", {})

    async def _drop(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None and self._ws_loop is asyncio.get_running_loop():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1)
        self._ws_loop = None


_OPTIONS = ("token", "connect_timeout", "step_timeout", "retries", "legal_actions", "render_mode")


def make_remote(id: str, **kwargs: Any) -> RemoteEnv:
    """``turngym.make("remote/<url>", **kwargs)``: ``kwargs`` are the client's options; the served env's own
    keyword arguments are the server's (``turngym serve ID --kwargs '{...}'``)."""
    unknown = sorted(set(kwargs) - set(_OPTIONS))
    if unknown:
        raise ConfigError(
            f"{id} got env keyword arguments {unknown}: a served env is made by its server, so give them there "
            f"(`turngym serve ENV_ID --kwargs '{{\"{unknown[0]}\": ...}}'`); a remote env takes only {', '.join(_OPTIONS)}"
        )
    return RemoteEnv(id[len(PREFIX) :], **kwargs)
