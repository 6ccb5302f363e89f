"""What a session's messages do to its env: reset, step, state, and a tool called over MCP.

Used alike by the WebSocket session, the HTTP endpoints and MCP JSON-RPC (``server.py``, ``mcp.py``).
A malformed message raises pydantic's ``ValidationError``; a message that cannot be played now (a
step before any reset, after the episode ended) raises ``ServeError`` (``EXECUTION_ERROR``); anything the env itself
raises propagates, and the episode is then over (the next message must be a reset).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from turngym.core.errors import ServeError
from turngym.core.types import Message, ToolCall
from turngym.core.wrappers import areset, astep
from turngym.serve import wire
from turngym.serve.sessions import Session


async def reset(session: Session, data: dict[str, Any], *, timeout: float | None) -> dict[str, Any]:
    req = wire.ResetData.model_validate(data)
    session.done, session.started = True, False  # until the reset succeeds
    result = await _bounded(session, areset(session.env, seed=req.seed, options=req.options), timeout, "reset")
    obs, info = result
    session.episode_id = req.episode_id or uuid.uuid4().hex
    session.seed, session.step_count, session.total_reward = req.seed, 0, 0.0
    session.started, session.done = True, False
    session.task_id, session.instance_hash = (
        str(info.get("task_id", "")),
        str(info.get("instance_hash", "")),
    )
    session.tools = list(obs.tools)
    session.send_legal = req.legal_actions
    return wire.reset_payload(result, _legal(session))


async def step(session: Session, data: dict[str, Any], *, timeout: float | None) -> dict[str, Any]:
    action = wire.parse_action(data)
    _check_playable(session)
    session.done = True  # until the step comes back: an env that raised mid-step needs a reset
    result = await _bounded(session, astep(session.env, action), timeout, "step")
    obs, reward, terminated, truncated, _ = result
    session.step_count += 1
    session.total_reward += float(reward)
    session.done = bool(terminated or truncated)
    session.tools = list(obs.tools)
    return wire.step_payload(result, _legal(session))


def state(session: Session) -> dict[str, Any]:
    return wire.ServedState(
        episode_id=session.episode_id,
        step_count=session.step_count,
        env_id=session.env_id,
        seed=session.seed,
        task_id=session.task_id,
        instance_hash=session.instance_hash,
        done=session.done,
        total_reward=session.total_reward,
    ).model_dump(mode="json")


async def tools(session: Session, *, timeout: float | None) -> list[Any]:
    """The tools the agent may call now; a session with no episode yet starts one (seed None)."""
    if not session.started or session.done:
        await reset(session, {}, timeout=timeout)
    return session.tools


async def call_tool(session: Session, name: str, arguments: dict[str, Any], *, timeout: float | None) -> dict[str, Any]:
    """One step whose action is the call of tool ``name``; the step payload. An episode that ended
    (or never began) is started afresh first, so an MCP client can call tools without knowing episodes."""
    if not session.started or session.done:
        await reset(session, {}, timeout=timeout)
    if name not in {t.name for t in session.tools}:
        raise ServeError(
            f"unknown tool {name!r}: this env offers {sorted(t.name for t in session.tools)} now (tools/list)"
        )
    action = Message(
        role="assistant",
        content="",
        tool_calls=[ToolCall(id="call_0", name=name, arguments=arguments)],
    )
    return await step(session, wire.action_data(action), timeout=timeout)


def _legal(session: Session) -> list[str] | None:
    """The env's legal replies now, where the client asked for them at reset (they can be long: Wordle has 3,686)."""
    if not session.send_legal:
        return None
    fn = getattr(session.env.unwrapped, "legal_actions", None)
    return fn() if fn is not None else None


def _check_playable(session: Session) -> None:
    if not session.started:
        raise ServeError("no episode to step: send a reset first")
    if session.done:
        raise ServeError(
            f"episode {session.episode_id} is over (after {session.step_count} steps): send a reset to start another"
        )


async def _bounded(session: Session, coro: Any, timeout: float | None, what: str) -> Any:
    """``coro`` within ``timeout``. A sync env's step runs inline and cannot be interrupted, so it is awaited
    as it is (a bound there would only cost: ~50 us a step, the most of any part of a served step)."""
    if timeout is None or not session.interruptible:
        return await coro
    try:
        async with asyncio.timeout(timeout):
            return await coro
    except TimeoutError:
        raise ServeError(
            f"the env's {what} took longer than {timeout:g} s (--step-timeout); the episode is over, send a reset"
        ) from None
