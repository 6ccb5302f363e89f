"""Faults around a served env: the server killed mid-episode, clients that vanish or go silent, and many
sessions opened and closed, with nothing left behind (envs, containers, browser contexts)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import turngym
from tests.serve.conftest import health, served, stop, wait_for
from turngym.agents.base import Agent, Policy
from turngym.agents.runner import group_tasks, run_episodes
from turngym.sandboxes.reaper import LABEL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _KillServer(Agent):
    """Guesses by bisection; in the third episode, before its second guess, kills the server (SIGKILL) and starts
    a new one on the same port, so that guess's step is lost in flight."""

    name = "kill-server"

    def __init__(self, restart) -> None:
        self.restart, self.episodes = restart, 0

    async def start(self, env, *, seed):
        self.episodes += 1
        agent, episode = self, self.episodes

        class Bisect(Policy):
            lo, hi, turns = 1, 100, 0

            async def act(self, observation):
                text = str(observation)
                if self.turns and "is higher" in text:
                    self.lo = self.guess + 1
                elif self.turns and "is lower" in text:
                    self.hi = self.guess - 1
                self.turns += 1
                if episode == 3 and self.turns == 2:
                    agent.restart()
                self.guess = (self.lo + self.hi) // 2
                return f"[{self.guess}]"

        return Bisect()


@pytest.mark.slow
def test_server_killed_mid_episode_ends_only_that_episode(tmp_path):
    port = _free_port()
    servers = []

    def restart() -> None:
        stop(servers[-1].proc, signal.SIGKILL)
        cm = served("turngym/GuessNumber-v0", port=port)
        servers.append(cm.__enter__())
        closers.append(cm)

    closers = [served("turngym/GuessNumber-v0", port=port)]
    servers.append(closers[0].__enter__())
    try:
        tasks = group_tasks(f"remote/ws://127.0.0.1:{port}", seeds=range(6), group_size=1)
        episodes = asyncio.run(run_episodes(tasks, _KillServer(restart), concurrency=1))
    finally:
        for cm in closers:
            cm.__exit__(None, None, None)
    errors = [e.error for e in episodes]
    assert len(servers) == 2, errors  # the agent killed the first one
    errors = [e.error for e in episodes]
    assert errors[2] is not None and "lost during a step" in errors[2], errors
    assert errors[:2] == [None, None] and errors[3:] == [None, None, None], errors
    assert all(e.success for i, e in enumerate(episodes) if i != 2)  # the next episodes reconnected and won


def test_a_vanished_client_has_its_session_and_sandbox_closed():
    """A client process killed (SIGKILL) mid-episode: its session, env and Docker container are closed."""
    pytest.importorskip("docker")
    import docker

    client = docker.from_env()
    with served("turngym/Terminal-v0") as srv:
        before = {c.id for c in client.containers.list(filters={"label": LABEL})}
        script = textwrap.dedent(f"""
            import turngym, sys, time
            env = turngym.make({srv.remote!r})
            env.reset(seed=0)
            print("ready", flush=True)
            time.sleep(600)
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            assert health(srv.url)["envs_open"] == 1
            during = {c.id for c in client.containers.list(filters={"label": LABEL})}
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        wait_for(lambda: health(srv.url)["envs_open"] == 0, 60, "the vanished client's env closed")
        assert health(srv.url)["sessions"] == 0
        assert during - before, "the episode ran in a container"
        wait_for(
            lambda: not ({c.id for c in client.containers.list(filters={"label": LABEL})} & (during - before)),
            60,
            "the session's container removed",
        )


async def test_a_silent_client_is_closed_after_the_idle_timeout():
    with served("turngym/GuessNumber-v0", "--idle-timeout", "1") as srv:
        async with connect(srv.url.replace("http", "ws", 1) + "/ws", proxy=None) as ws:
            await ws.send(json.dumps({"type": "reset", "data": {"seed": 1}}))
            assert json.loads(await ws.recv())["type"] == "observation"
            assert health(srv.url)["sessions"] == 1
            # say nothing: within a few seconds the server closes the session and says why
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert reply["data"]["code"] == "SESSION_ERROR" and "idle" in reply["data"]["message"]
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd.code == 1001
        assert health(srv.url)["envs_open"] == 0


async def _churn(url: str, n: int, concurrency: int, steps: int = 1) -> None:
    """``n`` sessions, ``concurrency`` at a time: each resets and steps; half say close, half just drop the socket."""
    ws_url = url.replace("http", "ws", 1) + "/ws"
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with limit:
            ws = await connect(ws_url, proxy=None, open_timeout=60)
            try:
                for message in [{"type": "reset", "data": {"seed": i}}] + [
                    {"type": "step", "data": {"text": "[50]"}}
                ] * steps:
                    await ws.send(json.dumps(message))
                    reply = json.loads(await ws.recv())
                    assert reply["type"] == "observation", reply
                if i % 2:
                    await ws.send(json.dumps({"type": "close"}))
            finally:
                if i % 2:
                    await ws.close()
                else:
                    ws.transport.abort()  # no close handshake: the socket just goes away

    await asyncio.gather(*(one(i) for i in range(n)))


@pytest.mark.slow
def test_a_thousand_sessions_leave_no_env_behind():
    with served("turngym/GuessNumber-v0", "--max-sessions", "256") as srv:
        asyncio.run(_churn(srv.url, 1000, concurrency=64))
        wait_for(lambda: health(srv.url)["envs_open"] == 0, 30, "every env closed")
        assert health(srv.url)["sessions"] == 0


@pytest.mark.docker
@pytest.mark.slow
def test_sandboxed_sessions_leave_no_container_behind():
    import docker

    client = docker.from_env()
    mine = {"label": LABEL}
    with served("turngym/Terminal-v0") as srv:
        before = {c.id for c in client.containers.list(filters=mine)}
        asyncio.run(_churn(srv.url, 16, concurrency=4, steps=0))
        wait_for(lambda: health(srv.url)["envs_open"] == 0, 60, "every env closed")
        wait_for(lambda: {c.id for c in client.containers.list(filters=mine)} <= before, 60, "every container removed")


def _renderers(pid: int) -> int:
    """Chromium renderer processes (one per open page) under process ``pid``."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,args="], capture_output=True, text=True, check=True).stdout
    children: dict[int, list[tuple[int, str]]] = {}
    for line in out.splitlines():
        p, pp, args = line.split(None, 2) if len(line.split(None, 2)) == 3 else (*line.split(None, 1), "")
        children.setdefault(int(pp), []).append((int(p), args))
    count, todo = 0, [pid]
    while todo:
        for child, args in children.get(todo.pop(), []):
            count += "--type=renderer" in args
            todo.append(child)
    return count


@pytest.mark.browser
@pytest.mark.slow
def test_browser_sessions_leave_no_context_behind():
    with served("miniwob/click-button-v1") as srv:
        asyncio.run(_churn(srv.url, 6, concurrency=3, steps=0))
        wait_for(lambda: health(srv.url)["envs_open"] == 0, 60, "every env closed")
        wait_for(lambda: _renderers(srv.proc.pid) == 0, 30, "every page (browser context) closed")


def test_remote_env_with_nothing_listening_fails_clearly():
    with pytest.raises(turngym.RemoteEnvError, match="cannot reach .*turngym serve"):
        turngym.make(f"remote/ws://127.0.0.1:{_free_port()}", retries=0)
