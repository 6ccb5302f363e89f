"""Docker sandboxes for real: the exec channel, isolation, resource limits, and a pool that survives
everything a sandboxed program can do to it."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import pytest_asyncio

from turngym.sandboxes.docker import DockerSandbox, SandboxConfig
from turngym.sandboxes.pool import SandboxPool

pytestmark = [pytest.mark.docker, pytest.mark.asyncio(loop_scope="module")]

CONFIG = SandboxConfig(memory="256m", pids=128, cpus=1.0)
PROCS = "for p in /proc/[0-9]*; do cat $p/comm 2>/dev/null; done"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool():
    async with SandboxPool(config=CONFIG, spare=2) as p:
        yield p
        # whatever the tests did, the pool still hands out sandboxes that work
        async with p.lease() as sb:
            assert (await sb.exec("echo alive")).stdout == "alive\n"


async def test_exec_channel_basics(pool):
    async with pool.lease() as sb:
        r = await sb.exec("echo out; echo err >&2; exit 3", timeout=10)
        assert (r.exit_code, r.stdout, r.stderr, r.timed_out) == (3, "out\n", "err\n", False)
        r = await sb.exec(["python3", "-c", "import sys; print(sys.stdin.read().upper())"], stdin="abc")
        assert r.stdout == "ABC\n"
        r = await sb.exec("pwd; echo $GREETING", cwd="/tmp", env={"GREETING": "hej"})
        assert r.stdout == "/tmp\nhej\n"
        r = await sb.exec(["no-such-program"])
        assert r.exit_code == 127 and "no-such-program" in r.stderr
        blob = bytes(range(256)) * 1000
        await sb.write_file("sub/dir/blob.bin", blob)
        assert await sb.read_file("/work/sub/dir/blob.bin") == blob
        assert (await sb.exec("wc -c < sub/dir/blob.bin")).stdout.strip() == str(len(blob))
        # many commands at once through the one channel
        outs = await asyncio.gather(*(sb.exec(f"echo {i}") for i in range(20)))
        assert [o.stdout for o in outs] == [f"{i}\n" for i in range(20)]
        r = await sb.exec("head -c 3000000 /dev/zero | tr '\\0' x")
        assert len(r.stdout) == 1 << 20 and "truncated" in r.stderr


async def test_no_network(pool):
    async with pool.lease() as sb:
        assert (await sb.exec("ls /sys/class/net")).stdout.split() == ["lo"]
        code = "import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)"
        r = await sb.exec(["python3", "-c", code], timeout=20)
        assert r.exit_code != 0
        assert "unreachable" in r.stderr, r.stderr


async def test_runs_unprivileged(pool):
    async with pool.lease() as sb:
        assert (await sb.exec("id -u")).stdout.strip() == "1000"
        status = (await sb.exec("cat /proc/self/status")).stdout
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        assert int(fields["CapEff"].strip(), 16) == 0
        assert fields["NoNewPrivs"].strip() == "1"


async def test_host_fs_and_docker_socket_not_visible(pool, tmp_path: Path):
    marker = Path("/tmp") / f"turngym-host-marker-{uuid.uuid4().hex}"
    marker.write_text("host secret")
    try:
        async with pool.lease() as sb:
            for path in ("/var/run/docker.sock", "/run/docker.sock", str(marker), str(Path.cwd()), str(tmp_path)):
                r = await sb.exec(["ls", path])
                assert r.exit_code != 0, f"{path} is visible inside the sandbox"
            # its own pid namespace: pid 1 is the helper, not the host's init
            assert "python3" in (await sb.exec("tr '\\0' ' ' < /proc/1/cmdline")).stdout
    finally:
        marker.unlink()


async def test_writes_outside_workdir_fail_or_vanish(pool):
    sb = await pool.acquire()
    for path in ("/etc/evil", "/usr/bin/evil", "/opt/evil", "/evil"):
        assert (await sb.exec(f"echo x > {path}")).exit_code != 0, f"{path} was writable"
    assert (await sb.exec("echo x > /work/a && echo y > /tmp/b && echo z > /dev/shm/c && mkdir -p d/e")).ok
    await sb.exec("chmod 000 d/e; chmod 500 d")  # the clean must cope with unwritable directories
    await sb.exec("sleep 600 & (setsid sleep 601 &) ; true")
    await sb.reset()
    r = await sb.exec(f"ls -A /work /tmp /dev/shm; {PROCS}")
    for name in ("a", "b", "c", "d", "sleep"):
        assert name not in r.stdout.split(), r.stdout
    pool.release(sb)


async def test_never_ending_command_killed_at_timeout_with_children(pool):
    async with pool.lease() as sb:
        r = await sb.exec("sleep 1000 & sleep 1001 & python3 -c 'while True: pass'", timeout=1.5)
        assert r.timed_out and r.exit_code < 0
        procs = (await sb.exec(PROCS)).stdout.split()
        assert "sleep" not in procs and "python3" not in procs[1:], procs  # procs[0] is the helper
        assert (await sb.exec("echo still-here")).stdout == "still-here\n"


async def test_fork_bomb_contained_by_pids_limit(pool):
    async with pool.lease() as sb:
        r = await sb.exec("bomb() { bomb | bomb & }; bomb; sleep 5", timeout=4)
        assert r.timed_out or r.exit_code != 0
        await sb.reset()
        assert (await sb.exec("echo survived")).stdout == "survived\n"
        n = len((await sb.exec(PROCS)).stdout.split())
        assert n < 5, f"{n} processes left after the reset"


async def test_memory_bomb_contained(pool):
    async with pool.lease() as sb:
        code = "x = []\nwhile True: x.append(b'x' * (32 << 20))"  # touched pages, not lazy zeros
        r = await sb.exec(["python3", "-c", code], timeout=60)
        assert r.exit_code == -9 and not r.timed_out  # the kernel's OOM killer took the bomb...
        assert (await sb.exec("echo helper-alive")).stdout == "helper-alive\n"  # ...and not the helper


async def test_broken_sandbox_is_replaced_never_handed_out(pool):
    sb = await pool.acquire()
    await asyncio.to_thread(sb._client.api.kill, sb.id)  # the container dies under the episode
    with pytest.raises(Exception, match="sandbox"):
        await sb.exec("true")
    assert not sb.healthy
    before = pool.replaced
    pool.release(sb)
    seen = []
    for _ in range(4):
        nxt = await pool.acquire()
        seen.append(nxt)
        assert nxt is not sb and nxt.healthy
        assert (await nxt.exec("echo ok")).stdout == "ok\n"
    for s in seen:
        pool.release(s)
    await asyncio.sleep(0)
    assert pool.replaced == before + 1


async def test_standalone_sandbox_close_is_idempotent():
    sb = await DockerSandbox.create(config=CONFIG)
    assert (await sb.exec("echo hi")).stdout == "hi\n"
    await sb.close()
    await sb.close()
    with pytest.raises(Exception, match="closed"):
        await sb.exec("true")
