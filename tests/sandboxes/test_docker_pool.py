"""The warm pool and the reaper for real: clean resets, ownership labels, `turngym sandbox ls/gc`,
and nothing left after an eval is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from turngym.sandboxes.docker import SandboxConfig
from turngym.sandboxes.pool import SandboxPool
from turngym.sandboxes.reaper import LABEL, list_sandboxes, owner_alive, owner_labels, reap

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parents[2]
TURNGYM = [str(Path(sys.executable).with_name("turngym"))]


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_owner_labels_detect_pid_reuse():
    mine = owner_labels("run-x")
    assert mine[LABEL] == "1" and mine[f"{LABEL}.run"] == "run-x"
    assert owner_alive(mine) is True
    assert owner_alive({**mine, f"{LABEL}.owner.pid": str(_dead_pid())}) is False
    # the pid lives, but it is another process than the one that started the container
    assert owner_alive({**mine, f"{LABEL}.owner.start": "some-other-boot:123"}) is False
    assert owner_alive({**mine, f"{LABEL}.owner.host": "elsewhere"}) is None


async def test_pool_reset_gives_a_clean_sandbox_and_reuses_containers():
    async with SandboxPool(config=SandboxConfig(), spare=1, max_size=2) as pool:
        ids = set()
        for i in range(6):
            async with pool.lease() as sb:
                ids.add(sb.id)
                r = await sb.exec("ls -A /work /tmp; for p in /proc/[0-9]*; do cat $p/comm; done")
                assert "leftover" not in r.stdout and "sleep" not in r.stdout, f"episode {i} saw: {r.stdout}"
                await sb.exec("echo x > leftover; echo y > /tmp/leftover; sleep 500 &")
        assert len(ids) <= 2  # warm containers came back cleaned, none was created per episode
        assert pool.stats()["replaced"] == 0
    assert not [r for r in list_sandboxes() if r.owner_pid == str(os.getpid())]


def test_reaper_removes_containers_of_dead_owners_only():
    from turngym.sandboxes.reaper import docker_client

    client = docker_client()
    dead = {**owner_labels("reaper-test"), f"{LABEL}.owner.pid": str(_dead_pid())}
    alive = owner_labels("reaper-test")
    made = [
        client.api.create_container("turngym/sandbox:latest", command=["sleep", "60"], labels=labels)["Id"]
        for labels in (dead, alive)
    ]
    try:
        removed = {r.id for r in reap(client)}
        assert made[0][:12] in removed
        assert made[1][:12] not in removed
        left = {r.id for r in list_sandboxes(client)}
        assert made[0][:12] not in left and made[1][:12] in left
    finally:
        from turngym.sandboxes.reaper import remove_container

        for cid in made:
            remove_container(client, cid)


def test_cli_ls_and_gc(tmp_path):
    from turngym.sandboxes.reaper import docker_client

    client = docker_client()
    labels = {**owner_labels("cli-test"), f"{LABEL}.owner.pid": str(_dead_pid())}
    cid = client.api.create_container("turngym/sandbox:latest", command=["sleep", "60"], labels=labels)["Id"]
    out = subprocess.run([*TURNGYM, "sandbox", "ls"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and cid[:12] in out.stdout and "gc removes it" in out.stdout
    out = subprocess.run([*TURNGYM, "sandbox", "gc"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and f"removed {cid[:12]}" in out.stdout
    assert cid[:12] not in {r.id for r in list_sandboxes(client)}


def test_sigkilled_eval_then_gc_leaves_nothing(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        textwrap.dedent(
            """
            name: kill-me
            episodes: 40
            envs:
              - id: turngym/HumanEvalMT-v0
            """
        )
    )
    proc = subprocess.Popen(
        [*TURNGYM, "eval", "--suite", str(suite), "--agent", "scripted", "--out", str(tmp_path / "run"), "--concurrency", "4"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 180
        while not [r for r in list_sandboxes() if r.owner_pid == str(proc.pid)]:
            assert proc.poll() is None, "the eval ended before it started a sandbox"
            assert time.monotonic() < deadline, "the eval started no sandbox within 180 s"
            time.sleep(0.2)
        time.sleep(1.0)  # episodes in flight
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    out = subprocess.run([*TURNGYM, "sandbox", "gc"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert not [r for r in list_sandboxes() if r.owner_pid == str(proc.pid)]
