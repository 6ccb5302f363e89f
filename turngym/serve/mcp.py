"""A served env's tools over MCP: JSON-RPC 2.0 ``initialize``, ``tools/list``, ``tools/call``, ``ping``.

The same answers whether the request came over ``POST /mcp`` (MCP's streamable HTTP transport, JSON
responses, the session in the ``Mcp-Session-Id`` header) or inside a ``{"type": "mcp"}`` WebSocket
message (on that connection's session), as OpenEnv's server answers them. A tool call is one step of
the session's episode (``episode.call_tool``): its reply text is the call's content, an invalid call
is a result with ``isError``, and the step's reward and done flag travel in ``_meta["turngym"]``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

import turngym
from turngym.core.errors import ServeError
from turngym.serve import episode
from turngym.serve.sessions import Session

PROTOCOL_VERSION = "2025-06-18"

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = (
    -32700,
    -32600,
    -32601,
    -32602,
    -32603,
)


def error(code: int, message: str, request_id: Any = None) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {"code": code, "message": message},
    }


def result(value: dict[str, Any], request_id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": value}


def is_notification(request: Any) -> bool:
    return isinstance(request, dict) and "id" not in request and isinstance(request.get("method"), str)


def check(request: Any) -> dict[str, Any] | None:
    """An error response if ``request`` is not a JSON-RPC 2.0 request, else None."""
    if not isinstance(request, dict):
        return error(
            INVALID_REQUEST,
            "a JSON-RPC request is a JSON object (batches are not supported)",
        )
    if request.get("jsonrpc") != "2.0" or not isinstance(request.get("method"), str):
        return error(
            INVALID_REQUEST,
            'a JSON-RPC 2.0 request needs "jsonrpc": "2.0" and a "method"',
            request.get("id"),
        )
    if not isinstance(request.get("params", {}), dict):
        return error(INVALID_PARAMS, '"params" must be an object', request.get("id"))
    return None


async def handle(
    request: dict[str, Any], session: Session, env_id: str, *, timeout: float | None
) -> dict[str, Any] | None:
    """The response to one checked request (``check``) on ``session``; None for a notification."""
    if is_notification(request):
        return None
    rid, method, params = (
        request.get("id"),
        request["method"],
        request.get("params") or {},
    )
    try:
        if method == "initialize":
            return result(
                {
                    "protocolVersion": params.get("protocolVersion") or PROTOCOL_VERSION,
                    "capabilities": {"tools": {"listChanged": False}},
                    "serverInfo": {
                        "name": f"turngym {env_id}",
                        "version": turngym.__version__,
                    },
                },
                rid,
            )
        if method == "ping":
            return result({}, rid)
        if method == "tools/list":
            specs = await episode.tools(session, timeout=timeout)
            return result(
                {
                    "tools": [
                        {
                            "name": t.name,
                            "description": t.description,
                            "inputSchema": t.parameters,
                        }
                        for t in specs
                    ]
                },
                rid,
            )
        if method == "tools/call":
            name, arguments = params.get("name"), params.get("arguments") or {}
            if not isinstance(name, str) or not isinstance(arguments, dict):
                return error(
                    INVALID_PARAMS,
                    'tools/call needs "name" (a string) and "arguments" (an object)',
                    rid,
                )
            try:
                payload = await episode.call_tool(session, name, arguments, timeout=timeout)
            except ServeError as e:
                return error(INVALID_PARAMS, str(e), rid)
            info = payload["metadata"]["info"]
            return result(
                {
                    "content": [{"type": "text", "text": payload["observation"]["text"]}],
                    "isError": "action_error" in info,
                    "_meta": {
                        "turngym": {
                            "reward": payload["reward"],
                            "done": payload["done"],
                            "info": info,
                        }
                    },
                },
                rid,
            )
        return error(
            METHOD_NOT_FOUND,
            f"method {method!r} is not served here: initialize, ping, tools/list, tools/call",
            rid,
        )
    except ValidationError as e:
        return error(INVALID_PARAMS, f"invalid params: {e.errors(include_url=False)}", rid)
    except Exception as e:  # noqa: BLE001 - the env raised: a JSON-RPC error, the session goes on
        return error(INTERNAL_ERROR, f"{type(e).__name__}: {e}", rid)
