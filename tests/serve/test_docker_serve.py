"""``turngym serve --docker``: the server in a container with a sandbox's limits, played from the host
through its proxy; its tool env runs commands in that container; SIGTERM and SIGKILL leave nothing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import turngym
from tests.conftest import REPO, require
from turngym.core.types import Message, ToolCall
from turngym.envs.tools.terminal import load_task

pytestmark = pytest.mark.docker
READY = re.compile(r"serving \S+ at (http://127\.0\.0\.1:(\d+)) ")
CONTAINER = re.compile(r"^container ([0-9a-f]{12}) .* healthy in ([\d.]+)s")


@pytest.fixture(scope="module")
def client():
    from turngym.sandboxes.reaper import docker_client

    try:
        c = docker_client()
        c.images.get("turngym/sandbox:latest")
    except Exception as e:  # noqa: BLE001
        require(False, f"Docker or the sandbox image is missing ({e}); run scripts/setup/40-docker.sh")
    return c


def start_server(task: str) -> tuple[subprocess.Popen[str], str, str]:
    """``turngym serve --docker`` as a subprocess: (process, base URL, container id) once it serves."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "turngym.cli.app", "serve", "--docker", "turngym/Terminal-v0", "--port", "0",
         "--kwargs", f'{{"task": "{task}"}}'],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    lines, cid = [], ""
    deadline = time.monotonic() + 300  # a first run builds the image's last layer
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if m := CONTAINER.match(line):
            cid = m.group(1)
        if m := READY.search(line):
            assert cid, lines
            return proc, m.group(1), cid
    proc.kill()
    pytest.fail(f"turngym serve --docker did not come up: {''.join(lines)}")


def bash(cmd: str) -> Message:
    return Message(
        role="assistant", content="", tool_calls=[ToolCall(id="c1", name="bash", arguments={"command": cmd})]
    )


def ours(client, pid: int) -> list[str]:
    return [c["Id"] for c in client.api.containers(all=True, filters={"label": f"turngym.owner.pid={pid}"})]


def test_serve_docker_plays_in_the_container_and_cleans_up(client):
    proc, url, cid = start_server("hello-file")
    try:
        info = client.api.inspect_container(cid)
        host = info["HostConfig"]
        assert host["NetworkMode"] == "none" and info["Config"]["NetworkDisabled"]
        assert not any("docker.sock" in (m.get("Source", "") + m.get("Destination", "")) for m in info["Mounts"])
        assert [m["Destination"] for m in info["Mounts"]] == ["/run/turngym"]
        assert info["Config"]["User"] not in ("", "0", "root", "0:0")
        assert host["Memory"] > 0 and host["NanoCpus"] > 0 and host["PidsLimit"] > 0 and host["ReadonlyRootfs"]
        assert info["Config"]["Labels"]["turngym.owner.pid"] == str(proc.pid)

        env = turngym.make(f"remote/{url.replace('http://', 'ws://')}")
        try:
            env.reset(seed=0)
            obs, *_ = env.step(bash("cat /etc/hostname; test -S /run/turngym/serve.sock && echo in-container; "
                                    "ls /var/run/docker.sock 2>&1; id -u; echo local=${TURNGYM_LOCAL_SANDBOX:+yes}"))  # fmt: skip
            lines = obs.messages[0].content.splitlines()
            assert lines[:2] == [cid, "in-container"], lines  # the container's hostname, its socket
            assert "No such file" in lines[2] and lines[3] != "0" and lines[4] == "local=yes", lines
            assert not Path("/work/hello.txt").exists()
            env.step(bash(load_task("hello-file").read("solution.sh") or ""))
            submit = Message(role="assistant", content="", tool_calls=[ToolCall(id="c2", name="submit", arguments={})])
            _obs, reward, terminated, _trunc, info = env.step(submit)
            assert (reward, terminated, info["success"]) == (1.0, True, True)
        finally:
            env.close()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert ours(client, proc.pid) == []
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_docker_sigkill_then_reaper_leaves_nothing(client):
    from turngym.sandboxes.reaper import reap

    proc, _url, cid = start_server("hello-file")
    proc.kill()
    proc.wait(10)
    reap(client)
    assert ours(client, proc.pid) == []
    assert not client.api.containers(all=True, filters={"id": cid})
