"""LocalSandbox: the sandbox contract over subprocesses (what a `turngym serve --docker` container uses)."""

from __future__ import annotations

import pytest

from turngym.core.errors import SandboxError
from turngym.sandboxes.local import LocalSandbox


async def test_exec_files_timeout_and_reset(tmp_path):
    async with LocalSandbox() as sb:
        r = await sb.exec("echo hi > a.txt && cat a.txt; echo err >&2; exit 3", 5)
        assert (r.exit_code, r.stdout, r.stderr, r.timed_out) == (3, "hi\n", "err\n", False)
        r = await sb.exec("sleep 100 & sleep 100", 0.3)
        assert r.timed_out and r.exit_code < 0 and r.duration < 3
        r = await sb.exec("(sleep 100 &); echo bg", 5)  # a background child holding the pipe does not block
        assert r.stdout == "bg\n" and r.duration < 2
        assert sb._victims()  # still running, found by its marker
        assert (await sb.exec("cat", 5, stdin="abc")).stdout == "abc"
        assert (await sb.exec(["no-such-program"], 5)).exit_code == 127
        await sb.write_file("d/x.txt", "X")
        assert await sb.read_file("d/x.txt") == b"X"
        await sb.reset()
        assert not list(sb.workdir.iterdir()) and not sb._victims()
        with pytest.raises(SandboxError, match="cannot read"):
            await sb.read_file("d/x.txt")


async def test_a_named_workdir_is_held_by_one_sandbox(tmp_path):
    a = LocalSandbox(workdir=tmp_path)
    with pytest.raises(SandboxError, match="already held"):
        LocalSandbox(workdir=tmp_path)
    a.release()
    b = LocalSandbox(workdir=tmp_path)
    await b.close()
    await b.close()
