"""Docker sandboxes with a fast exec channel.

A container's main process is a small helper (``helper.py``, passed on the command line so any
image with ``python3`` works). The host attaches to the container's stdin/stdout once, through the
Docker API, and then speaks length-prefixed JSON with the helper: a command round trip costs a
pipe write and a fork inside the container, not the set-up of a ``docker exec``.

    config = SandboxConfig(image="turngym/sandbox:latest", memory="512m")
    async with await DockerSandbox.create(config=config) as sb:
        r = await sb.exec("echo hi", timeout=5)

Isolation, by default: no network (``network_mode="none"``), a non-root user, a read-only root
file system with tmpfs at the work directory, /tmp and /dev/shm, all capabilities dropped,
no-new-privileges, memory (no swap), CPU and pids limits. Labels name the run and the owning
process (``reaper.owner_labels``). When the owner dies, the attach connection closes, the helper
reads end-of-file, kills everything and exits, and the engine removes the container
(``auto_remove``); the reaper handles whatever is left.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import struct
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from turngym.core.errors import SandboxError
from turngym.sandboxes.base import ExecResult, Sandbox
from turngym.sandboxes.reaper import docker_client, install_exit_cleanup, owner_labels, remove_container

HELPER_SOURCE = (Path(__file__).with_name("helper.py")).read_text()
DEFAULT_IMAGE = "turngym/sandbox:latest"

_HEADER = struct.Struct(">BxxxL")  # docker's multiplexed stream frame: stream type, payload size
_LEN = struct.Struct(">I")


class SandboxConfig(BaseModel):
    """How a Docker sandbox is made. Frozen and hashable: pools are keyed by it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    image: str = DEFAULT_IMAGE
    #: memory limit (docker syntax, "512m"); swap is not allowed on top of it
    memory: str = "512m"
    cpus: float = Field(default=1.0, gt=0)
    pids: int = Field(default=256, ge=16)
    #: "none" (default) or the name of a Docker network, for envs that need one explicitly
    network: str = "none"
    user: str = "1000:1000"
    workdir: str = "/work"
    work_size: str = "256m"
    tmp_size: str = "64m"
    #: extra environment variables of every command
    env: tuple[tuple[str, str], ...] = ()
    #: seconds to wait for a new container's helper to answer
    startup_timeout: float = Field(default=60.0, gt=0)
    #: seconds the host waits beyond a command's own timeout before calling the sandbox broken
    grace: float = Field(default=15.0, gt=0)

    def create_kwargs(self, labels: dict[str, str]) -> dict[str, Any]:
        """Keyword arguments of ``client.api.create_container`` / ``create_host_config``."""
        uid, _, gid = self.user.partition(":")
        return {
            "host_config": {
                "network_mode": self.network,
                "mem_limit": self.memory,
                "memswap_limit": self.memory,
                "nano_cpus": int(self.cpus * 1e9),
                "pids_limit": self.pids,
                "read_only": True,
                "tmpfs": {
                    self.workdir: f"rw,exec,nosuid,nodev,size={self.work_size},uid={uid},gid={gid or uid}",
                    "/tmp": f"rw,nosuid,nodev,size={self.tmp_size},mode=1777",
                },
                "shm_size": "16m",
                "cap_drop": ["ALL"],
                "security_opt": ["no-new-privileges"],
                "auto_remove": True,
                "ipc_mode": "private",
                "init": False,
            },
            "labels": labels,
        }


class DockerSandbox(Sandbox):
    """One container and its helper. Make it with ``await DockerSandbox.create(config=...)``."""

    def __init__(self, *, container_id: str, config: SandboxConfig, client: Any) -> None:
        self.id = container_id
        self.config = config
        self._client = client
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pump: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._stderr = bytearray()
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self.broken: str | None = None  # why the sandbox can no longer be used
        self._closed = False

    # -- life cycle -------------------------------------------------------------------------------
    @classmethod
    async def create(
        cls,
        *,
        config: SandboxConfig | None = None,
        run_id: str = "",
        client: Any = None,
        labels: dict[str, str] | None = None,
    ) -> DockerSandbox:
        """Create, attach and start a container, then wait until its helper answers."""
        config = config or SandboxConfig()
        client = client or await asyncio.to_thread(docker_client)
        install_exit_cleanup()
        name = f"turngym-{uuid.uuid4().hex[:12]}"
        cid = await asyncio.to_thread(_create_container, client, config, name, {**owner_labels(run_id), **(labels or {})})
        sb = cls(container_id=cid, config=config, client=client)
        try:
            sock = await asyncio.to_thread(_attach, client, cid)
            sb._reader, sb._writer = await asyncio.open_connection(sock=sock)
            sb._ready = asyncio.get_running_loop().create_future()
            sb._pump = asyncio.create_task(sb._read_loop(), name=f"sandbox-{name}")
            await asyncio.to_thread(client.api.start, cid)
            await asyncio.wait_for(asyncio.shield(sb._ready), config.startup_timeout)
        except BaseException as e:
            await sb.close()
            if isinstance(e, asyncio.TimeoutError):
                raise SandboxError(
                    f"sandbox {name} (image {config.image!r}) did not answer within {config.startup_timeout}s: "
                    f"{sb._stderr_tail() or 'no output'}; check that the image has python3, or raise startup_timeout"
                ) from None
            if isinstance(e, SandboxError) or not isinstance(e, Exception):
                raise
            raise SandboxError(f"cannot start sandbox {name} (image {config.image!r}): {type(e).__name__}: {e}") from e
        return sb

    @property
    def healthy(self) -> bool:
        return not self._closed and self.broken is None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._fail_pending(SandboxError(f"sandbox {self.id[:12]} was closed"))
        if self._writer is not None:
            self._writer.close()
        if self._pump is not None:
            self._pump.cancel()
        await asyncio.to_thread(remove_container, self._client, self.id)

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
        merged = dict(self.config.env)
        merged.update(env or {})
        req = {"op": "exec", "cmd": cmd if isinstance(cmd, str) else list(cmd), "timeout": timeout,
               "cwd": cwd, "env": merged, "stdin": stdin}  # fmt: skip
        wait = None if timeout is None else timeout + self.config.grace
        reply = await self._call(req, wait)
        if "error" in reply:  # the helper could not start it (no such program, the pids limit is reached)
            code = 127 if reply["error"].startswith("FileNotFoundError") else 126
            return ExecResult(exit_code=code, stderr=f"cannot start the command: {reply['error']}")
        return ExecResult.model_validate(reply, strict=False)

    async def write_file(self, path: str, data: bytes | str, *, mode: int = 0o644) -> None:
        blob = data.encode() if isinstance(data, str) else bytes(data)
        reply = await self._call({"op": "write", "path": path, "data": base64.b64encode(blob).decode(), "mode": mode})
        if "error" in reply:
            raise SandboxError(f"cannot write {path!r} in sandbox {self.id[:12]}: {reply['error']}")

    async def read_file(self, path: str) -> bytes:
        reply = await self._call({"op": "read", "path": path})
        if "error" in reply:
            raise SandboxError(f"cannot read {path!r} in sandbox {self.id[:12]}: {reply['error']}")
        return base64.b64decode(reply["data"])

    async def reset(self) -> None:
        reply = await self._call({"op": "clean"}, 30.0)
        if not reply.get("ok"):
            self.broken = f"clean left {reply.get('left')} processes ({reply.get('error', '')})"
            raise SandboxError(f"sandbox {self.id[:12]} could not be cleaned: {self.broken}; it will be replaced")

    async def ping(self) -> bool:
        try:
            return bool((await self._call({"op": "ping"}, 10.0)).get("ok"))
        except SandboxError:
            return False

    # -- the channel ------------------------------------------------------------------------------
    async def _call(self, req: dict[str, Any], wait: float | None = 30.0) -> dict[str, Any]:
        if not self.healthy:
            raise SandboxError(f"sandbox {self.id[:12]} is unusable: {self.broken or 'closed'}; take a new one")
        assert self._writer is not None
        rid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        blob = json.dumps({**req, "id": rid}).encode()
        try:
            self._writer.write(_LEN.pack(len(blob)) + blob)
            await self._writer.drain()
            return await asyncio.wait_for(fut, wait)
        except asyncio.TimeoutError:
            self._break(f"no answer to {req['op']!r} within {wait}s")
            raise SandboxError(f"sandbox {self.id[:12]} stopped answering ({req['op']}); it will be replaced") from None
        except (ConnectionError, OSError) as e:
            self._break(f"channel lost: {e}")
            raise SandboxError(f"sandbox {self.id[:12]} lost its channel ({e}); it will be replaced") from None
        finally:
            self._pending.pop(rid, None)

    async def _read_loop(self) -> None:
        assert self._reader is not None
        buf = bytearray()
        try:
            while True:
                kind, size = _HEADER.unpack(await self._reader.readexactly(_HEADER.size))
                payload = await self._reader.readexactly(size)
                if kind != 1:  # the helper's stderr: keep the tail for error messages
                    self._stderr += payload
                    del self._stderr[:-4096]
                    continue
                buf += payload
                while len(buf) >= 4:
                    (n,) = _LEN.unpack_from(buf)
                    if len(buf) < 4 + n:
                        break
                    self._dispatch(json.loads(bytes(buf[4 : 4 + n])))
                    del buf[: 4 + n]
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as e:
            self._break(f"the helper exited ({type(e).__name__}); {self._stderr_tail()}")
        except asyncio.CancelledError:
            pass

    def _dispatch(self, msg: dict[str, Any]) -> None:
        if msg.get("ready"):
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(msg)
            return
        fut = self._pending.get(msg.get("id", -1))
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def _break(self, why: str) -> None:
        if self.broken is None:
            self.broken = why
        self._fail_pending(SandboxError(f"sandbox {self.id[:12]} broke: {why}"))

    def _fail_pending(self, err: Exception) -> None:
        for fut in [*self._pending.values(), self._ready]:
            if fut is not None and not fut.done():
                fut.set_exception(err)
                fut.exception()  # mark retrieved: nobody may be waiting any more

    def _stderr_tail(self) -> str:
        return self._stderr.decode("utf-8", "replace").strip()[-500:]

    def __repr__(self) -> str:
        state = "closed" if self._closed else (f"broken: {self.broken}" if self.broken else "ok")
        return f"DockerSandbox({self.id[:12]}, image={self.config.image!r}, {state})"


def _create_container(client: Any, config: SandboxConfig, name: str, labels: dict[str, str]) -> str:
    import docker.errors

    kw = config.create_kwargs(labels)
    host_config = client.api.create_host_config(**kw["host_config"])
    env = {"TURNGYM_WORKDIR": config.workdir, "HOME": config.workdir, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        out = client.api.create_container(
            config.image,
            command=["python3", "-S", "-c", HELPER_SOURCE],
            user=config.user,
            working_dir=config.workdir,
            environment=env,
            labels=kw["labels"],
            host_config=host_config,
            name=name,
            stdin_open=True,  # with detach=False: StdinOnce, so the helper sees EOF when we go
            detach=False,
            network_disabled=config.network == "none",
        )
    except docker.errors.ImageNotFound:
        raise SandboxError(
            f"the sandbox image {config.image!r} is not there: build it with `turngym sandbox build` "
            "(scripts/setup/40-docker.sh does), or pass another image"
        ) from None
    return out["Id"]


def _attach(client: Any, cid: str) -> Any:
    """The raw, bidirectional socket of ``docker attach`` (stdin, stdout and stderr streams)."""
    sock = client.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    raw = getattr(sock, "_sock", sock)
    dup = raw.dup()  # ours alone, whatever happens to the HTTP response object
    dup.setblocking(False)
    return dup
