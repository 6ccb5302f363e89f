"""`turngym serve` as a client sees it: the wire protocol's replies and error codes, who may connect, the bounds
on messages and sessions, and `remote/<url>` envs playing it (sync, async, through `turngym eval`)."""

from __future__ import annotations

import asyncio
import json
import subprocess

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import turngym
from tests.serve.conftest import TURNGYM, health, served, wait_for


@pytest.fixture(scope="module")
def game():
    with served("turngym/GuessNumber-v0", "--max-message-bytes", "4096") as srv:
        yield srv


async def _ask(ws, message) -> dict:
    await ws.send(message if isinstance(message, str) else json.dumps(message))
    return json.loads(await ws.recv())


def _ws(srv, **kwargs):
    return connect(srv.url.replace("http", "ws", 1) + "/ws", proxy=None, **kwargs)


async def test_every_malformed_message_gets_its_code_and_the_session_goes_on(game):
    async with _ws(game) as ws:
        bad = {
            "{not json": "INVALID_JSON",
            json.dumps({"type": "dance"}): "UNKNOWN_TYPE",
            json.dumps([1, 2]): "UNKNOWN_TYPE",
            json.dumps({"type": "step", "data": {"text": "[5]"}}): "EXECUTION_ERROR",  # no episode yet
            json.dumps({"type": "reset", "data": {"seed": -1}}): "VALIDATION_ERROR",
            json.dumps({"type": "reset", "data": {"sed": 3}}): "VALIDATION_ERROR",
            json.dumps({"type": "reset", "data": "seed=3"}): "VALIDATION_ERROR",
            json.dumps({"type": "step", "data": {"txt": "[5]"}}): "VALIDATION_ERROR",
            json.dumps({"type": "step", "data": {"text": 5}}): "VALIDATION_ERROR",
            "x" * 5000: "MESSAGE_TOO_LARGE",
        }
        for message, code in bad.items():
            reply = await _ask(ws, message)
            assert reply["type"] == "error" and reply["data"]["code"] == code, (message[:40], reply)
            assert reply["data"]["message"]
        # the same socket still plays
        reply = await _ask(ws, {"type": "reset", "data": {"seed": 7, "episode_id": "mine"}})
        assert reply["type"] == "observation" and reply["data"]["done"] is False and reply["data"]["reward"] is None
        obs = reply["data"]["observation"]
        assert set(obs) == {"text", "metadata"} and "[50]" in obs["text"]  # only the fields /schema declares
        assert set(reply["data"]["metadata"]) == {"messages", "tools", "info", "terminated", "truncated"}
        assert reply["data"]["metadata"]["info"]["instance_hash"]
        step = await _ask(ws, {"type": "step", "data": {"text": "no brackets"}})
        assert (
            step["type"] == "observation" and "action_error" in step["data"]["metadata"]["info"]
        )  # the env's own answer
        state = await _ask(ws, {"type": "state"})
        assert state["type"] == "state" and state["data"]["episode_id"] == "mine" and state["data"]["step_count"] == 1
        # far over the bound: the WebSocket layer closes with 1009 (message too big)
        await ws.send("y" * 20000)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 1009
    wait_for(lambda: health(game.url)["envs_open"] == 0, 10, "the session's env closed")


def test_http_endpoints_and_their_errors(game):
    with httpx.Client(base_url=game.url, timeout=30) as http:
        assert http.post("/step", json={"action": {"text": "[5]"}}).status_code == 409  # no episode yet
        r = http.post("/reset", json={"seed": 3})
        assert r.status_code == 200 and r.json()["done"] is False
        r = http.post("/step", json={"action": {"text": "[50]"}})
        assert (
            r.status_code == 200 and r.json()["reward"] == 0.0 and "higher" in r.json()["observation"]["text"] + "lower"
        )
        assert http.get("/state").json()["step_count"] == 1
        assert http.post("/step", json={"action": {"txt": "[5]"}}).status_code == 422
        assert http.post("/step", content=b"{oops").status_code == 400
        assert http.post("/reset", content=b"x" * 5000).status_code == 413
        schema = http.get("/schema").json()
        assert set(schema) == {"action", "observation", "state"}
        assert set(schema["observation"]["properties"]) == {"text", "done", "reward", "metadata"}
        meta = http.get("/metadata").json()
        assert meta["name"] == "turngym/GuessNumber-v0" and meta["action_format"]["pattern"]
        # MCP JSON-RPC answers malformed requests with JSON-RPC errors (HTTP 200)
        assert http.post("/mcp", content=b"{").json()["error"]["code"] == -32700
        assert http.post("/mcp", json={}).json()["error"]["code"] == -32600
        assert http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "nope"}).json()["error"]["code"] == -32601


@pytest.mark.parametrize(
    ("limit", "named"),
    [("--max-sessions", "--max-sessions 2"), ("--max-sessions-per-client", "--max-sessions-per-client 2")],
)
async def test_capacity_reached_in_all_and_per_client(limit, named):
    with served("turngym/GuessNumber-v0", limit, "2") as srv:
        async with _ws(srv) as a, _ws(srv) as b:
            for ws in (a, b):
                assert (await _ask(ws, {"type": "reset", "data": {}}))["type"] == "observation"
            c = await _ws(srv)  # a third
            reply = json.loads(await c.recv())
            assert reply["data"]["code"] == "CAPACITY_REACHED" and named in reply["data"]["message"], reply
            with pytest.raises(ConnectionClosed) as closed:
                await c.recv()
            assert closed.value.rcvd.code == 1013  # try again later
        # both closed: a new session gets in
        wait_for(lambda: health(srv.url)["sessions"] == 0, 10, "sessions closed")
        async with _ws(srv) as d:
            assert (await _ask(d, {"type": "reset", "data": {}}))["type"] == "observation"


def test_remote_env_plays_like_in_process_sync_and_async(game):
    remote, local = turngym.make(game.remote), turngym.make("turngym/GuessNumber-v0")
    try:
        for seed in (0, 1):
            assert remote.reset(seed=seed) == local.reset(seed=seed)
            for action in ("[50]", "oops", "[75]", "[12]"):
                assert remote.step(action) == local.step(action)
        assert remote.unwrapped.action_format.pattern() == local.unwrapped.action_format.pattern()
        assert remote.unwrapped.description == local.unwrapped.description
    finally:
        remote.close()
        local.close()

    async def group():  # a group on one remote env instance shares the instance, as in-process
        env = turngym.make(game.remote)
        hashes = [(await env.areset(seed=5))[1]["instance_hash"] for _ in range(3)]
        await env.aclose()
        return hashes

    hashes = asyncio.run(group())
    assert len(set(hashes)) == 1


def test_turngym_eval_runs_on_a_remote_env(game, tmp_path):
    suite = tmp_path / "remote.yaml"
    suite.write_text(f"name: remote\nenvs:\n  - id: {game.remote}\n    episodes: 4\n")
    out = subprocess.run(
        [str(TURNGYM), "eval", "--suite", str(suite), "--agent", "random", "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["overall"]["episodes"] == 4 and summary["overall"]["errors"] == 0


def test_a_non_loopback_bind_needs_a_token():
    out = subprocess.run(
        [str(TURNGYM), "serve", "turngym/GuessNumber-v0", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "400"},
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert "--host 0.0.0.0" in out.stderr and "token" in out.stderr and "Traceback" not in out.stderr


async def test_with_a_token_every_request_without_it_gets_401_and_touches_no_env():
    with served("turngym/GuessNumber-v0", "--host", "0.0.0.0", env={"TURNGYM_SERVE_TOKEN": "s3cret"}) as srv:
        url = f"http://127.0.0.1:{srv.port}"
        auth = {"Authorization": "Bearer s3cret"}
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for method, path in [
                ("GET", "/health"),
                ("GET", "/metadata"),
                ("POST", "/reset"),
                ("POST", "/mcp"),
                ("GET", "/state"),
            ]:
                for headers in ({}, {"Authorization": "Bearer wrong"}):
                    r = await http.request(method, path, headers=headers, json={})
                    assert r.status_code == 401, (method, path, r.status_code)
            ws_url = url.replace("http", "ws", 1) + "/ws"
            for kwargs in ({}, {"subprotocols": ["bearer.wrong"]}):
                with pytest.raises(InvalidStatus) as denied:
                    await connect(ws_url, proxy=None, **kwargs)
                assert denied.value.response.status_code == 401
            assert (await http.get("/health", headers=auth)).json()["envs_open"] == 0
            # the token as a bearer header, or as the WebSocket subprotocol bearer.TOKEN
            for kwargs in ({"additional_headers": auth}, {"subprotocols": ["bearer.s3cret"]}):
                async with connect(ws_url, proxy=None, **kwargs) as ws:
                    assert (await _ask(ws, {"type": "reset", "data": {"seed": 1}}))["type"] == "observation"
            r = await http.post("/mcp", headers=auth, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
            assert r.json()["result"] == {}
        # the remote env: refused without the token, plays with it
        with pytest.raises(turngym.RemoteEnvError, match="token"):
            turngym.make(f"remote/ws://127.0.0.1:{srv.port}", retries=0)
        env = turngym.make(f"remote/ws://127.0.0.1:{srv.port}", token="s3cret")
        assert (await env.areset(seed=2))[1]["instance_hash"]
        await env.aclose()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["turngym/GuesNumber-v0"], "Did you mean 'turngym/GuessNumber-v0'"),
        (["turngym/GuessNumber-v0", "--kwargs", "{high: 3"], "--kwargs"),
        (["turngym/GuessNumber-v0", "--max-sessions", "0"], "--max-sessions"),
    ],
)
def test_a_mistake_on_the_command_line_is_one_paragraph(args, says):
    out = subprocess.run(
        [str(TURNGYM), "serve", *args, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "400"},
    )
    assert out.returncode == 2 and says in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_turngym_envs_check_passes_on_a_remote_env(game):
    """Gymnasium's check_env and turngym's own checks (same seed, same instance; garbage actions answered) hold
    for a served env seen through `remote/`."""
    out = subprocess.run(
        [str(TURNGYM), "envs", "check", game.remote], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_random_agent_plays_the_same_episodes_remotely_with_legal_actions(game):
    """With ``legal_actions=True`` the server sends the env's legal replies, so the random agent picks among them
    as it does in-process: the same actions, the same returns."""
    from turngym.agents.runner import group_tasks, run_episodes
    from turngym.agents.scripted import RandomAgent

    def play(env_id, **kwargs):
        tasks = group_tasks(env_id, seeds=range(4), group_size=1, env_kwargs=kwargs)
        return asyncio.run(run_episodes(tasks, RandomAgent(seed=3), concurrency=2))

    local, remote = play("turngym/GuessNumber-v0"), play(game.remote, legal_actions=True)
    assert [[t.action for t in e.turns] for e in remote] == [[t.action for t in e.turns] for e in local]
    assert [e.total_return for e in remote] == [e.total_return for e in local]
    assert all(e.error is None for e in remote)


def test_a_partner_spec_in_kwargs_is_built_by_the_server(tmp_path):
    """`turngym serve --kwargs '{"oracle": SPEC}'`: the server builds the model oracle once (envs never import
    agents), and a client's question is answered by it, named after it, in the step's messages and info."""
    from tests.agents.conftest import tiny_model

    spec = {"spec": f"hf:{tiny_model('tiny')}", "temperature": 0.0, "max_new_tokens": 4}
    with served("turngym/TwentyQuestions-v0", "--kwargs", json.dumps({"oracle": spec})) as srv, \
            httpx.Client(base_url=srv.url, timeout=120) as http:
        assert http.post("/reset", json={"seed": 0}).status_code == 200
        data = http.post("/step", json={"action": {"text": "[ask is it alive]"}}).json()
        assert data["metadata"]["info"]["partner"] == "hf:tiny"
        assert data["metadata"]["messages"][0].get("name") == "hf-tiny"
    bad = subprocess.run(
        [str(TURNGYM), "serve", "turngym/TwentyQuestions-v0", "--kwargs", json.dumps({"oracle": f"hf:{tmp_path}/no"})],
        capture_output=True, text=True, timeout=120, check=False,
    )  # a spec whose model is not there stops the start, in one paragraph
    assert bad.returncode != 0 and "--kwargs oracle" in bad.stdout + bad.stderr and "Traceback" not in bad.stderr
