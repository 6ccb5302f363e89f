"""``LocalSandbox``: the sandbox contract over plain subprocesses, for code that already runs inside an
isolated place (a ``turngym serve --docker`` container), where starting containers is neither possible
nor wanted (the host's Docker socket is never mounted into one).

    async with LocalSandbox() as sb:                 # a fresh temporary work directory
        r = await sb.exec("echo hi > a.txt && cat a.txt", timeout=5)
    sb = LocalSandbox(workdir="/work", scratch=("/tmp",), sweep=True)   # what a serve container uses

Each command runs in its own session (process group) with a small environment (``HOME`` = the work
directory, a fixed ``PATH``) and a marker variable naming its sandbox; at its timeout the group and
every process still carrying the marker are killed. ``reset`` kills the sandbox's processes and
empties the work directory and the ``scratch`` directories; with ``sweep`` it kills every other
process this user may signal (except this process and its ancestors), which catches commands that
dropped the marker (``env -i``): only for a place that holds nothing else, such as that container.

A named work directory is held by one ``LocalSandbox`` of a process at a time (tasks write to absolute
paths such as /work, so two episodes there would see each other's files): a second one is refused
with a ``SandboxError``. ``LocalPool`` hands such sandboxes to the tool envs (``envs/tools/sandboxed.py``)
when the environment variable ``TURNGYM_SANDBOX=local`` is set, as a serve container sets it.

Isolation is what the surrounding place gives: a ``LocalSandbox`` on a bare host is no sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import stat
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from turngym.core.errors import SandboxError
from turngym.sandboxes.base import ExecResult, Sandbox

#: ``TURNGYM_SANDBOX=local``: the tool envs run their commands with ``LocalPool`` instead of Docker
MODE_ENV = "TURNGYM_SANDBOX"
#: the work directory of the local sandboxes (default /work)
WORKDIR_ENV = "TURNGYM_LOCAL_WORKDIR"
#: every command carries ``TURNGYM_LOCAL_SANDBOX=<sandbox id>``, so its processes can be found again
MARKER = "TURNGYM_LOCAL_SANDBOX"
OUTPUT_LIMIT = 1 << 20
PATH = "/usr/local/bin:/usr/bin:/bin"
#: images whose commands a local sandbox in a serve container may stand in for (it is built FROM them)
STAND_IN_FOR = ("turngym/sandbox:latest",)


def local_mode() -> bool:
    """Whether the tool envs should run their commands locally (``TURNGYM_SANDBOX=local``)."""
    return os.environ.get(MODE_ENV, "").strip().lower() == "local"


class LocalSandbox(Sandbox):
    """Commands as subprocesses of this process, in one work directory. See the module docstring."""

    _held: ClassVar[set[str]] = set()

    def __init__(
        self,
        *,
        workdir: str | os.PathLike[str] | None = None,
        scratch: Sequence[str] = (),
        sweep: bool = False,
        env: dict[str, str] | None = None,
        output_limit: int = OUTPUT_LIMIT,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="turngym-local-")) if workdir is None else Path(workdir).resolve()
        if not self._own_dir:
            key = str(self.workdir)
            if key in LocalSandbox._held:
                raise SandboxError(
                    f"the work directory {key} is already held by another local sandbox of this process (another "
                    "episode is running there): a process runs one episode per work directory at a time; wait "
                    "until it ends, serve more containers, or give each sandbox its own workdir"
                )
            LocalSandbox._held.add(key)
            self.workdir.mkdir(parents=True, exist_ok=True)
        self.scratch = tuple(scratch)
        self.sweep = sweep
        self.env = dict(env or {})
        self.output_limit = output_limit
        self._groups: set[int] = set()
        self._closed = False

    # -- the contract -----------------------------------------------------------------------------
    async def exec(
        self,
        cmd: str | Sequence[str],
        timeout: float | None = 30.0,
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
    ) -> ExecResult:
        self._check_open()
        argv = (
            ["/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh", "-c", cmd]
            if isinstance(cmd, str)
            else list(cmd)
        )
        full_env = {"HOME": str(self.workdir), "PATH": PATH, "LANG": "C.UTF-8", "TERM": "dumb",
                    "TURNGYM_WORKDIR": str(self.workdir), **self.env, **(env or {}), MARKER: self.id}  # fmt: skip
        start = time.monotonic()
        # our own pipes, not asyncio's: its wait() would also wait for every background child holding them
        pipes = [os.pipe(), os.pipe()]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=self._resolve(cwd) if cwd else self.workdir,
                env=full_env,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=pipes[0][1],
                stderr=pipes[1][1],
                start_new_session=True,
            )
        except OSError as e:  # no such program, the pids limit is reached
            for fd in (*pipes[0], *pipes[1]):
                os.close(fd)
            code = 127 if isinstance(e, FileNotFoundError) else 126
            return ExecResult(exit_code=code, stderr=f"cannot start the command: {type(e).__name__}: {e}")
        self._groups.add(proc.pid)
        os.close(pipes[0][1])
        os.close(pipes[1][1])
        out = _Collector(pipes[0][0], self.output_limit)
        err = _Collector(pipes[1][0], self.output_limit)
        feeder = asyncio.ensure_future(_feed(proc.stdin, stdin.encode())) if stdin is not None else None
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            timed_out = True
            self._kill_group(proc.pid)
            await proc.wait()
        except BaseException:  # cancelled: the command must not outlive its caller
            self._kill_group(proc.pid)
            raise
        finally:
            out.close()  # what it wrote before it exited is in the pipe: read, then let go
            err.close()
            if feeder is not None:
                feeder.cancel()
            self._groups.discard(proc.pid)
        code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
        stderr = err.text()
        if out.truncated or err.truncated:
            stderr += f"\n[turngym: output truncated at {self.output_limit} bytes]"
        return ExecResult(exit_code=code, stdout=out.text(), stderr=stderr,
                          timed_out=timed_out, duration=time.monotonic() - start)  # fmt: skip

    async def write_file(self, path: str, data: bytes | str, *, mode: int = 0o644) -> None:
        self._check_open()
        target = self._resolve(path)
        blob = data.encode() if isinstance(data, str) else bytes(data)
        try:
            await asyncio.to_thread(_write, target, blob, mode)
        except OSError as e:
            raise SandboxError(f"cannot write {path!r} in local sandbox {self.id}: {e}") from None

    async def read_file(self, path: str) -> bytes:
        self._check_open()
        try:
            return await asyncio.to_thread(self._resolve(path).read_bytes)
        except OSError as e:
            raise SandboxError(f"cannot read {path!r} in local sandbox {self.id}: {e}") from None

    async def reset(self) -> None:
        self._check_open()
        left = self.kill()
        await asyncio.to_thread(self._wipe)
        if left:
            raise SandboxError(f"local sandbox {self.id} could not kill {len(left)} of its processes: {left[:10]}")

    async def close(self) -> None:
        if self._closed:
            return
        self.kill()
        await asyncio.to_thread(self._wipe)
        self.release()

    def release(self) -> None:
        """Kill the processes and give the work directory up at once (synchronous: for callers that cannot
        await); its files stay until the next holder's ``reset`` or ``close`` empties it. Safe twice."""
        if self._closed:
            return
        self.kill()
        self._closed = True
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            LocalSandbox._held.discard(str(self.workdir))

    # -- processes --------------------------------------------------------------------------------
    def kill(self) -> list[int]:
        """SIGKILL every process of this sandbox (and, with ``sweep``, every other one we may signal but
        this process and its ancestors) until none is left or 3 s pass; returns the pids still alive."""
        deadline = time.monotonic() + 3
        while True:
            for pgid in list(self._groups):
                self._kill_group(pgid)
            victims = self._victims()
            if not victims or time.monotonic() > deadline:
                return victims
            for pid in victims:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)

    def _kill_group(self, pgid: int) -> None:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
        for pid in self._victims():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def _victims(self) -> list[int]:
        """Live processes (zombies left out) carrying this sandbox's marker, or with ``sweep`` every
        process we may signal but this one and its ancestors."""
        keep = _ancestors(os.getpid())
        marker = f"{MARKER}={self.id}".encode()
        out = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) in keep:
                continue
            pid = int(entry.name)
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state in ("Z", "X"):
                    continue
                if self.sweep:
                    if os.stat(f"/proc/{pid}").st_uid == os.getuid() or os.getuid() == 0:
                        out.append(pid)
                elif marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    out.append(pid)
            except (OSError, IndexError):
                continue
        return out

    # -- files ------------------------------------------------------------------------------------
    def _resolve(self, path: str) -> Path:
        return Path(path) if os.path.isabs(path) else self.workdir / path

    def _wipe(self) -> None:
        for top in (self.workdir, *self.scratch):
            _empty(Path(top))

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError(f"local sandbox {self.id} is closed: take a new one")

    def __repr__(self) -> str:
        return f"LocalSandbox({self.id}, workdir={str(self.workdir)!r}{', closed' if self._closed else ''})"


class LocalPool:
    """What the tool envs lease sandboxes from in local mode: the ``SandboxPool`` calls they use, over one
    ``LocalSandbox`` at a time on the work directory of ``TURNGYM_LOCAL_WORKDIR`` (default /work).
    Commands run in the place this process runs in, so only the sandbox image it stands in for (which
    the serve image is built from) is accepted; a task needing its own image is refused by name."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self._leased: LocalSandbox | None = None

    @classmethod
    async def shared(cls, config: Any, **_options: Any) -> LocalPool:
        return cls(config)

    async def start(self) -> None:
        return None

    async def acquire(self) -> LocalSandbox:
        image = getattr(self.config, "image", STAND_IN_FOR[0])
        if image not in STAND_IN_FOR:
            raise SandboxError(
                f"this env wants the image {image!r}, but its commands run locally in this server's container "
                f"(TURNGYM_SANDBOX=local), which has what {STAND_IN_FOR[0]} has and nothing more: serve it without "
                "--docker, or pick a task without its own image"
            )
        workdir = os.environ.get(WORKDIR_ENV, "/work")
        extra = dict(getattr(self.config, "env", ()) or ())
        sb = LocalSandbox(workdir=workdir, scratch=("/tmp", "/dev/shm"), sweep=True, env=extra)
        try:
            await sb.reset()
        except BaseException:
            sb.release()
            raise
        self._leased = sb
        return sb

    def release(self, sandbox: Sandbox) -> None:
        if isinstance(sandbox, LocalSandbox):
            sandbox.release()
        if self._leased is sandbox:
            self._leased = None

    async def unshare(self) -> None:
        sb, self._leased = self._leased, None
        if sb is not None:
            await sb.close()


def _ancestors(pid: int) -> set[int]:
    out = {pid}
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
        out.add(pid)
    return out


class _Collector:
    """The output of one pipe, read as it comes (on the event loop) and kept up to ``limit`` bytes."""

    def __init__(self, fd: int, limit: int) -> None:
        self.fd, self.limit = fd, limit
        self.buf = bytearray()
        self.truncated = False
        os.set_blocking(fd, False)
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(fd, self.read)

    def read(self) -> bool:
        """Read what is there; False at end of file or when nothing more is there now."""
        try:
            chunk = os.read(self.fd, 65536)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            chunk = b""
        if not chunk:
            self.loop.remove_reader(self.fd)
            return False
        room = self.limit - len(self.buf)
        self.buf += chunk[: max(room, 0)]
        self.truncated = self.truncated or len(chunk) > room
        return True

    def close(self) -> None:
        if self.fd < 0:
            return
        while self.read():
            pass
        self.loop.remove_reader(self.fd)
        os.close(self.fd)
        self.fd = -1

    def text(self) -> str:
        return self.buf.decode("utf-8", "replace")


async def _feed(stream: asyncio.StreamWriter | None, data: bytes) -> None:
    if stream is None:
        return
    with contextlib.suppress(OSError):  # a command that never reads its stdin
        stream.write(data)
        await stream.drain()
    stream.close()


def _write(target: Path, blob: bytes, mode: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(blob)
    os.chmod(target, mode)


def _empty(top: Path) -> None:
    """Empty ``top``, even where a command took its own permissions away."""
    if not top.is_dir():
        return
    for root, dirs, _files in os.walk(top):
        for d in dirs:
            path = os.path.join(root, d)
            if not os.path.islink(path):
                with contextlib.suppress(OSError):
                    os.chmod(path, stat.S_IRWXU)
    for entry in os.scandir(top):
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
