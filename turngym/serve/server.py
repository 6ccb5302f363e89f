"""``turngym serve``: registered envs over the OpenEnv wire protocol (FastAPI + uvicorn).

    app = create_app(ServeConfig(env_ids=["turngym/GuessNumber-v0"]))
    serve(config)                       # what the CLI runs: uvicorn on 127.0.0.1:8000

Routes (each served env also answers under ``/<env id>/...``; the first one at the root too):

- ``WS /ws``: a session, its own env instance. Messages ``reset`` (``seed``, ``episode_id``,
  ``options``), ``step`` (``wire.ServedAction``), ``state``, ``close``, ``mcp`` (JSON-RPC); replies
  ``observation``, ``state``, ``mcp`` or ``error`` with OpenEnv's codes (``INVALID_JSON``,
  ``UNKNOWN_TYPE``, ``VALIDATION_ERROR``, ``EXECUTION_ERROR``, ``CAPACITY_REACHED``,
  ``FACTORY_ERROR``, ``SESSION_ERROR``) and ``MESSAGE_TOO_LARGE``. An error never ends the session.
- ``POST /reset``, ``POST /step``, ``GET /state``: one shared episode over plain HTTP, for curl and
  quick checks (concurrent clients want ``/ws``).
- ``GET /health``, ``GET /metadata``, ``GET /schema``, ``POST /mcp`` (``mcp.py``).

Who may connect: with a token set, every request needs it (``Authorization: Bearer TOKEN``, or
for WebSockets the subprotocol ``bearer.TOKEN``); one without gets 401 and touches no env. A
message larger than ``max_message_bytes`` is refused (WebSocket: ``MESSAGE_TOO_LARGE``; HTTP: 413).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any

import gymnasium
from fastapi import (
    APIRouter,
    FastAPI,
    Request,
    Response,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

import turngym
from turngym.core.errors import ServeError
from turngym.core.registry import env_info
from turngym.core.wrappers import aclose
from turngym.serve import episode, mcp, wire
from turngym.serve.sessions import Session, Sessions

TOKEN_ENV = "TURNGYM_SERVE_TOKEN"
SUBPROTOCOL_PREFIX = "bearer."
SESSION_HEADER = "mcp-session-id"
#: the OpenEnv HTTP standard this server follows (OpenAPI info.version; `openenv validate` reads it)
OPENENV_HTTP_VERSION = "1.0.0"


class ServeConfig(BaseModel):
    """How ``turngym serve`` serves its envs."""

    model_config = ConfigDict(extra="forbid")
    env_ids: list[str] = Field(min_length=1)
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    #: a Unix socket to listen on instead of host:port
    uds: str | None = None
    max_sessions: int = Field(64, ge=1)
    max_sessions_per_client: int | None = Field(None, ge=1)
    idle_timeout: float = Field(300.0, ge=0)
    step_timeout: float | None = Field(600.0, gt=0)
    max_message_bytes: int = Field(1 << 20, ge=1024)
    token: str | None = None

    @field_validator("token")
    @classmethod
    def _token(cls, v: str | None) -> str | None:
        return v or None

    @property
    def loopback(self) -> bool:
        if self.uds is not None:
            return True
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def check_exposure(config: ServeConfig) -> None:
    """Refuse to bind anything but loopback without a token: a served tool env runs what clients send."""
    if not config.loopback and config.token is None:
        raise ValueError(
            f"--host {config.host} binds an address other machines can reach, and no token is set: a served "
            "tool env runs whatever a client sends in its sandbox, so an open port is an open shell. Set a token "
            f"(--token, or the environment variable {TOKEN_ENV}) that clients send as 'Authorization: Bearer "
            "TOKEN', or bind 127.0.0.1."
        )


# -- one served env ---------------------------------------------------------------------------------
class EnvService:
    """The routes of one env id, on the server's shared sessions."""

    def __init__(self, env_id: str, sessions: Sessions, config: ServeConfig) -> None:
        self.env_id, self.sessions, self.config = env_id, sessions, config
        self._metadata: dict[str, Any] | None = None
        self._http: Session | None = None
        self._http_lock = asyncio.Lock()

    async def metadata(self) -> dict[str, Any]:
        """Name and description (what OpenEnv clients read) plus what a remote turngym env needs to
        prompt an agent: the action format's description and pattern, modality, turn limit."""
        if self._metadata is None:
            info = env_info(self.env_id)
            env = _make(self.env_id, self.config.env_kwargs)
            try:
                inner = env.unwrapped
                fmt = getattr(inner, "action_format", None)
                self._metadata = {
                    "name": self.env_id,
                    "description": getattr(inner, "description", "") or info.description,
                    "version": turngym.__version__,
                    "author": "turngym",
                    "modality": info.modality,
                    "sandbox": info.sandbox,
                    "max_turns": getattr(env, "max_turns", None),
                    "action_format": None
                    if fmt is None
                    else {
                        "name": fmt.name,
                        "describe": fmt.describe(),
                        "pattern": fmt.pattern(),
                    },
                }
            finally:
                await aclose(env)
        return self._metadata

    def router(self) -> APIRouter:
        r = APIRouter()
        cfg = self.config

        @r.get("/health")
        async def health() -> dict[str, Any]:
            return {
                "status": "healthy",
                "sessions": len(self.sessions),
                "max_sessions": self.sessions.max_sessions,
                "envs_open": self.sessions.envs_open,
                "envs": cfg.env_ids,
            }

        @r.get("/metadata")
        async def metadata() -> dict[str, Any]:
            return await self.metadata()

        @r.get("/schema")
        async def schema() -> dict[str, Any]:
            return {
                "action": wire.ServedAction.model_json_schema(),
                "observation": wire.ServedObservation.model_json_schema(),
                "state": wire.ServedState.model_json_schema(),
            }

        @r.post("/reset")
        async def http_reset(request: Request) -> Response:
            return await self._http_call(
                request,
                lambda s, body: episode.reset(s, body, timeout=cfg.step_timeout),
            )

        @r.post("/step")
        async def http_step(request: Request) -> Response:
            async def go(s: Session, body: dict[str, Any]) -> dict[str, Any]:
                if not isinstance(body.get("action"), dict):
                    raise ServeError('POST /step takes {"action": {"text": ...}}')
                return await episode.step(s, body["action"], timeout=cfg.step_timeout)

            return await self._http_call(request, go)

        @r.get("/state")
        async def http_state() -> dict[str, Any]:
            return (
                episode.state(self._http)
                if self._http is not None
                else wire.ServedState(env_id=self.env_id).model_dump()
            )

        @r.post("/mcp")
        async def http_mcp(request: Request) -> Response:
            return await self._mcp_post(request)

        @r.delete("/mcp")
        async def http_mcp_end(request: Request) -> Response:
            session = self.sessions.get(request.headers.get(SESSION_HEADER, ""))
            if session is None or session.kind != "mcp":
                return JSONResponse({"detail": "no such MCP session"}, status_code=404)
            await self.sessions.close(session)
            return Response(status_code=200)

        @r.get("/mcp")
        async def http_mcp_stream() -> Response:  # no server-initiated messages: MCP allows 405 here
            return Response(status_code=405, headers={"Allow": "POST, DELETE"})

        @r.websocket("/ws")
        async def ws(websocket: WebSocket) -> None:
            await self._ws_session(websocket)

        return r

    # -- HTTP ------------------------------------------------------------------------------------
    async def _http_call(
        self,
        request: Request,
        fn: Callable[[Session, dict[str, Any]], Awaitable[dict[str, Any]]],
    ) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError as e:
            return JSONResponse({"detail": f"the body is not JSON: {e}"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"detail": "the body must be a JSON object"}, status_code=422)
        async with self._http_lock:
            if self._http is None or self.sessions.get(self._http.id) is None:
                try:
                    self._http = await self.sessions.open(self.env_id, _client(request), "http")
                except ServeError as e:
                    status = 503 if e.code == "CAPACITY_REACHED" else 500
                    return JSONResponse({"detail": str(e), "code": e.code}, status_code=status)
            session = self._http
            session.busy = True
            try:
                return JSONResponse(await fn(session, body))
            except ValidationError as e:
                return JSONResponse({"detail": e.errors(include_url=False)}, status_code=422)
            except ServeError as e:
                return JSONResponse({"detail": str(e)}, status_code=409)
            except Exception as e:  # noqa: BLE001 - the env raised: the episode is over, the server goes on
                return JSONResponse(
                    {"detail": f"{type(e).__name__}: {e}", "code": "EXECUTION_ERROR"},
                    status_code=500,
                )
            finally:
                session.busy = False
                session.touch()

    async def _mcp_post(self, request: Request) -> Response:
        try:
            rpc = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return JSONResponse(mcp.error(mcp.PARSE_ERROR, "the body is not JSON"))
        bad = mcp.check(rpc)
        if bad is not None:
            return JSONResponse(bad)
        header = request.headers.get(SESSION_HEADER)
        if header is not None:
            session = self.sessions.get(header)
            if session is None or session.kind != "mcp":
                return JSONResponse(
                    mcp.error(
                        mcp.INVALID_REQUEST,
                        f"no MCP session {header!r} (closed, or idle too long): initialize again",
                        rpc.get("id"),
                    ),
                    status_code=404,
                )
            temporary = False
        else:
            try:
                session = await self.sessions.open(self.env_id, _client(request), "mcp")
            except ServeError as e:
                return JSONResponse(mcp.error(mcp.INTERNAL_ERROR, str(e), rpc.get("id")))
            # a session for clients that initialize (the SDK's); one request's env for those that do not
            temporary = rpc["method"] != "initialize"
        async with session.lock:
            session.busy = True
            try:
                answer = await mcp.handle(rpc, session, self.env_id, timeout=self.config.step_timeout)
            finally:
                session.busy = False
                session.touch()
        headers = {}
        if temporary:
            await self.sessions.close(session)
        else:
            headers["Mcp-Session-Id"] = session.id
        if answer is None:  # a notification
            return Response(status_code=202, headers=headers)
        return JSONResponse(answer, headers=headers)

    # -- WebSocket -------------------------------------------------------------------------------
    async def _ws_session(self, websocket: WebSocket) -> None:
        offered = websocket.scope.get("subprotocols") or []
        await websocket.accept(subprotocol=next((p for p in offered if not p.startswith(SUBPROTOCOL_PREFIX)), None))
        try:
            session = await self.sessions.open(self.env_id, _client(websocket), "ws")
        except ServeError as e:
            await _send_error(websocket, str(e), e.code, **e.details)
            await _close(websocket, 1013 if e.code == "CAPACITY_REACHED" else 1011)
            return
        task = asyncio.current_task()
        evicted: list[str] = []

        def evict(why: str) -> None:
            evicted.append(why)
            if task is not None:
                task.cancel()

        session.on_evict = evict
        try:
            await self._ws_loop(websocket, session)
        except WebSocketDisconnect:
            pass
        except asyncio.CancelledError:
            if not evicted:
                raise
            with contextlib.suppress(Exception):
                await _send_error(websocket, f"session closed: {evicted[0]}", "SESSION_ERROR")
        finally:
            await self.sessions.close(session)
            await _close(websocket, 1001 if evicted else 1000)

    async def _ws_loop(self, websocket: WebSocket, session: Session) -> None:
        limit, timeout = self.config.max_message_bytes, self.config.step_timeout
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            raw = message.get("text")
            if raw is None:
                raw = (message.get("bytes") or b"").decode("utf-8", "replace")
            session.touch()
            if len(raw) > limit:
                await _send_error(
                    websocket,
                    f"the message has {len(raw)} bytes, more than this server takes ({limit}, --max-message-bytes)",
                    "MESSAGE_TOO_LARGE",
                )
                continue
            try:
                msg = json.loads(raw)
            except json.JSONDecodeError as e:
                await _send_error(websocket, f"Invalid JSON: {e}", "INVALID_JSON")
                continue
            kind = msg.get("type") if isinstance(msg, dict) else None
            data = msg.get("data", {}) if isinstance(msg, dict) else None
            if kind == "close":
                return
            if kind not in ("reset", "step", "state", "mcp"):
                await _send_error(
                    websocket,
                    f"Unknown message type: {kind!r}; this server takes reset, step, state, close, mcp",
                    "UNKNOWN_TYPE",
                )
                continue
            if not isinstance(data, dict):
                await _send_error(
                    websocket, f'"data" must be a JSON object, not {type(data).__name__}', "VALIDATION_ERROR"
                )
                continue
            session.busy = True
            try:
                if kind == "reset":
                    reply = {
                        "type": "observation",
                        "data": await episode.reset(session, data, timeout=timeout),
                    }
                elif kind == "step":
                    reply = {
                        "type": "observation",
                        "data": await episode.step(session, data, timeout=timeout),
                    }
                elif kind == "state":
                    reply = {"type": "state", "data": episode.state(session)}
                elif kind == "mcp":
                    bad = mcp.check(data)
                    answer = bad or await mcp.handle(data, session, self.env_id, timeout=timeout)
                    if answer is None:
                        continue
                    reply = {"type": "mcp", "data": answer}
            except ValidationError as e:
                await _send_error(
                    websocket,
                    "Invalid message",
                    "VALIDATION_ERROR",
                    errors=wire.jsonable(e.errors(include_url=False)),
                )
                continue
            except ServeError as e:
                await _send_error(websocket, str(e), e.code)
                continue
            except Exception as e:  # noqa: BLE001 - the env raised: the episode is over, the session goes on
                await _send_error(websocket, f"{type(e).__name__}: {e}", "EXECUTION_ERROR")
                continue
            finally:
                session.busy = False
                session.touch()
            await websocket.send_text(json.dumps(reply))


async def _send_error(websocket: WebSocket, message: str, code: str, **extra: Any) -> None:
    await websocket.send_text(json.dumps({"type": "error", "data": {"message": message, "code": code, **extra}}))


async def _close(websocket: WebSocket, code: int) -> None:
    with contextlib.suppress(Exception):
        await websocket.close(code)


def _client(conn: Request | WebSocket) -> str:
    return conn.client.host if conn.client is not None else "unix"


def check_partners(config: ServeConfig) -> None:
    """A dialogue partner given as an agent spec in the env kwargs names an LLM agent whose model exists
    (``ConfigError`` otherwise), checked before the socket is bound; nothing is built here."""
    from turngym.benchmarks.eval import check_partner_kwargs

    check_partner_kwargs(config.env_kwargs, where="--kwargs")


def _make(env_id: str, kwargs: dict[str, Any]) -> gymnasium.Env:
    return turngym.make(env_id, **kwargs)


# -- the app ----------------------------------------------------------------------------------------
def create_app(config: ServeConfig) -> FastAPI:
    """The ASGI app serving ``config.env_ids``; its sessions close at shutdown."""
    from turngym.agents.partner import PartnerPool

    check_exposure(config)
    for env_id in config.env_ids:
        env_info(env_id)  # a RegistryError names close matches
    check_partners(config)
    # a dialogue partner given as an agent spec (--kwargs '{"oracle": "hf:DIR"}') is built by the first session
    # that needs it and shared by all (envs never import agents); closed at shutdown
    partners = PartnerPool()
    sessions = Sessions(
        lambda env_id: _make(env_id, partners.resolve(config.env_kwargs)),
        max_sessions=config.max_sessions,
        max_per_client=config.max_sessions_per_client,
        idle_timeout=config.idle_timeout,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        sessions.start()
        try:
            yield
        finally:
            await sessions.stop()
            await partners.aclose()

    def env_app(env_id: str, **kwargs: Any) -> FastAPI:
        # one FastAPI app per env, so each has its own /openapi.json (`openenv validate URL/<env id>` reads it)
        app = FastAPI(
            title=f"turngym: {env_id}",
            version=OPENENV_HTTP_VERSION,
            description=f"{env_id} over the OpenEnv wire protocol, served by turngym",
            **kwargs,
        )
        app.include_router(EnvService(env_id, sessions, config).router())
        return app

    app = env_app(config.env_ids[0], lifespan=lifespan)
    app.state.sessions = sessions
    for env_id in config.env_ids:
        app.mount("/" + env_id, env_app(env_id))
    return _Gate(app, token=config.token, max_bytes=config.max_message_bytes)  # type: ignore[return-value]


class _Gate:
    """In front of the app: the token check and the HTTP body bound, before any route (or env) is reached."""

    def __init__(self, app: FastAPI, *, token: str | None, max_bytes: int) -> None:
        self.app, self.token, self.max_bytes = app, token, max_bytes
        self.state = app.state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        if self.token is not None and not self._authorized(scope):
            return await _deny(scope, receive, send)
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                return await _respond(
                    send,
                    413,
                    f"the request has {int(length)} bytes, more than this server takes ({self.max_bytes}, --max-message-bytes)",
                )
        return await self.app(scope, receive, send)

    def _authorized(self, scope: dict[str, Any]) -> bool:
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        candidates = [auth[7:].strip()] if auth[:7].lower() == "bearer " else []
        if scope["type"] == "websocket":
            candidates += [
                p[len(SUBPROTOCOL_PREFIX) :] for p in scope.get("subprotocols", []) if p.startswith(SUBPROTOCOL_PREFIX)
            ]
        assert self.token is not None
        return any(hmac.compare_digest(c.encode(), self.token.encode()) for c in candidates)


_DENIED = (
    "a token is required: send 'Authorization: Bearer TOKEN' (or, for a WebSocket, the subprotocol 'bearer.TOKEN')"
)


async def _deny(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        return await _respond(send, 401, _DENIED, [(b"www-authenticate", b"Bearer")])
    await receive()  # websocket.connect
    if "websocket.http.response" in scope.get("extensions", {}):
        body = json.dumps({"detail": _DENIED}).encode()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": "unauthorized"})


async def _respond(
    send: Any,
    status: int,
    detail: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def serve(config: ServeConfig, *, on_ready: Callable[[str], None] | None = None) -> None:
    """Run the server until SIGINT/SIGTERM (uvicorn); every session's env is closed on the way out.
    ``on_ready`` gets the base URL once the socket listens (the real port where ``port`` was 0)."""
    import uvicorn

    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            uds=config.uds,
            ws="websockets-sansio",
            ws_max_size=4 * config.max_message_bytes,
            # messages are small JSON or already-compressed screenshots: deflate costs more CPU than it saves
            ws_per_message_deflate=False,
            log_level="warning",
            timeout_graceful_shutdown=5,
            lifespan="on",
        )
    )
    original = server.startup

    async def startup(sockets: Any = None) -> None:
        await original(sockets=sockets)
        if on_ready is not None and server.started:
            on_ready(_base_url(config, server))

    server.startup = startup  # type: ignore[method-assign]
    server.run()


def _base_url(config: ServeConfig, server: Any) -> str:
    if config.uds is not None:
        return f"unix:{config.uds}"
    port = config.port
    for s in getattr(server, "servers", []):
        for sock in s.sockets:
            port = sock.getsockname()[1]
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"http://{host}:{port}"
