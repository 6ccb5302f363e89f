"""A served tool env's tools over MCP: the `mcp` SDK's own client (streamable HTTP, the initialize handshake)
lists and calls a Terminal env's tools through `turngym serve`'s /mcp, and a WebSocket session answers
{"type": "mcp"} messages on its own env."""

from __future__ import annotations

import json

import pytest
from mcp import Client
from websockets.asyncio.client import connect

from tests.serve.conftest import health, served, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def terminal():
    with served("turngym/Terminal-v0") as srv:
        yield srv


async def test_the_mcp_sdk_client_lists_and_calls_a_terminal_envs_tools(terminal):
    async with Client(f"{terminal.url}/mcp") as client:
        assert client.server_info.name == "turngym turngym/Terminal-v0"
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert {"bash", "submit"} <= set(tools)
        assert tools["bash"].input_schema["properties"]  # the env's JSON schema, as MCP's inputSchema
        first = await client.call_tool("bash", {"command": "echo turngym > note.txt && hostname"})
        assert not first.is_error and first.content[0].text.strip()
        # one MCP session is one env instance: the file is still there on the next call
        second = await client.call_tool("bash", {"command": "cat note.txt"})
        assert second.content[0].text.strip() == "turngym"
        assert second.meta["turngym"]["done"] is False
        bad = await client.call_tool("bash", {"comand": "ls"})  # the env answers a malformed call as an invalid action
        assert bad.is_error and bad.meta["turngym"]["info"]["action_error"]
        assert health(terminal.url)["sessions"] == 1
    # the client ends its session (DELETE /mcp): the env and its container are closed
    wait_for(lambda: health(terminal.url)["envs_open"] == 0, 60, "the MCP session's env closed")


async def test_mcp_messages_on_a_websocket_session(terminal):
    async with connect(terminal.url.replace("http", "ws", 1) + "/ws", proxy=None) as ws:

        async def rpc(method, params=None, id=1):
            await ws.send(
                json.dumps(
                    {"type": "mcp", "data": {"jsonrpc": "2.0", "id": id, "method": method, "params": params or {}}}
                )
            )
            reply = json.loads(await ws.recv())
            assert reply["type"] == "mcp" and reply["data"]["id"] == id
            return reply["data"]

        assert (await rpc("initialize", {"protocolVersion": "2025-06-18"}))["result"]["capabilities"][
            "tools"
        ] is not None
        await ws.send(json.dumps({"type": "reset", "data": {"seed": 0}}))
        task = json.loads(await ws.recv())["data"]["observation"]["text"]
        names = [t["name"] for t in (await rpc("tools/list", id=2))["result"]["tools"]]
        assert "bash" in names
        out = await rpc("tools/call", {"name": "bash", "arguments": {"command": "pwd"}}, id=3)
        assert out["result"]["content"][0]["text"].strip().startswith("/")
        unknown = await rpc("tools/call", {"name": "rm_rf", "arguments": {}}, id=4)
        assert unknown["error"]["code"] == -32602 and "rm_rf" in unknown["error"]["message"]
        # the tool calls were steps of the episode the reset began
        await ws.send(json.dumps({"type": "state"}))
        state = json.loads(await ws.recv())["data"]
        assert state["step_count"] == 1 and state["seed"] == 0 and task
