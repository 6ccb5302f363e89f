"""Long-lived processes inside a Docker sandbox, spoken to over stdin/stdout; MCP servers over that.

``DockerSandbox.exec`` runs a command to completion. A stdio server (an MCP server, a REPL) must
live for a whole episode, so it is started with ``docker exec`` on the sandbox's container, stdin
attached: the process is in the container (its network, user, limits and file system), and the
hijacked exec connection is its stdin (written) and its stdout and stderr (Docker's multiplexed
frames, read and split here).

    async with await StdioProcess.start(sandbox, ["python3", "-i"]) as proc:
        await proc.send(b"print(1)\\n")
        chunk = await proc.receive()

    conn = await McpConnection.start(sandbox, ["/opt/mcp/git/bin/mcp-server-git"])
    tools = conn.tools                              # the server's tools (mcp_types.Tool)
    result = await conn.call_tool("git_status", {"repo_path": "/work/repo"})
    await conn.aclose()

Ending: ``aclose`` closes the process's stdin (an MCP server exits on end of input, as the MCP
stdio transport specifies), waits ``grace`` seconds, then SIGKILLs it by the pid it wrote when it
started. Nothing outlives the sandbox either way: the sandbox's ``reset`` (the warm pool runs it on
every returned sandbox) kills every process in the container, exec'd ones included, and removing
the container kills the rest.

``McpConnection`` owns its ``mcp.ClientSession`` in a task of its own (anyio task groups must be
left by the task that entered them), so ``start``, ``call_tool`` and ``aclose`` may come from
different tasks of one event loop, as an env's ``areset`` and ``astep`` do.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import struct
from collections.abc import AsyncIterator, Sequence
from typing import Any, Self

from turngym.core.errors import SandboxError
from turngym.sandboxes.docker import DockerSandbox

_HEADER = struct.Struct(">BxxxL")  # docker's multiplexed stream frame: stream type, payload size
STDERR_KEEP = 4096


class StdioProcess:
    """One process started with ``docker exec -i`` in a sandbox. Make it with ``await StdioProcess.start(...)``."""

    def __init__(self, sandbox: DockerSandbox, exec_id: str, pidfile: str, cmd: Sequence[str]) -> None:
        self.sandbox = sandbox
        self.exec_id = exec_id
        self.pidfile = pidfile
        self.cmd = list(cmd)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._stdout: asyncio.Queue[bytes] = asyncio.Queue()
        self._stderr = bytearray()
        self._pump: asyncio.Task[None] | None = None
        self.exited = asyncio.Event()
        self._closed = False

    @classmethod
    async def start(
        cls,
        sandbox: DockerSandbox,
        cmd: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> StdioProcess:
        """Start ``cmd`` in the sandbox's container as the sandbox's user, with stdin attached."""
        if not isinstance(sandbox, DockerSandbox):
            raise SandboxError(
                f"a stdio server needs a Docker sandbox (docker exec), got {type(sandbox).__name__}: "
                "TURNGYM_SANDBOX=local has no container to run it in; unset TURNGYM_SANDBOX where Docker is reachable"
            )
        if not sandbox.healthy:
            raise SandboxError(f"cannot start {list(cmd)} in sandbox {sandbox.id[:12]}: it is {sandbox.broken or 'closed'}")
        pidfile = f"/tmp/.turngym-stdio-{secrets.token_hex(6)}.pid"
        # the shell writes its pid (the server's, after exec) where ``aclose`` finds it
        argv = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', pidfile, *cmd]
        config = sandbox.config
        environment = {"HOME": config.workdir, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
                       **dict(config.env), **(env or {})}  # fmt: skip
        client = sandbox._client  # the sandbox's own Docker client, shared on purpose
        try:
            exec_id = await asyncio.to_thread(
                lambda: client.api.exec_create(
                    sandbox.id, argv, stdin=True, stdout=True, stderr=True, tty=False,
                    user=config.user, workdir=cwd or config.workdir, environment=environment,
                )["Id"]
            )  # fmt: skip
            sock = await asyncio.to_thread(client.api.exec_start, exec_id, socket=True)
        except Exception as e:
            raise SandboxError(
                f"cannot start {list(cmd)} in sandbox {sandbox.id[:12]}: {type(e).__name__}: {e}; "
                "the container may be gone (take a new sandbox)"
            ) from e
        raw = getattr(sock, "_sock", sock)
        dup = raw.dup()  # ours alone, whatever happens to the HTTP response object
        dup.setblocking(False)
        with contextlib.suppress(Exception):
            sock.close()
        proc = cls(sandbox, exec_id, pidfile, cmd)
        proc._reader, proc._writer = await asyncio.open_connection(sock=dup)
        proc._pump = asyncio.create_task(proc._read_loop(), name=f"stdio-{exec_id[:12]}")
        return proc

    async def send(self, data: bytes) -> None:
        """Write to the process's stdin."""
        if self._closed or self.exited.is_set() or self._writer is None:
            raise SandboxError(f"{self.cmd[0]} in sandbox {self.sandbox.id[:12]} has exited: {self.stderr_tail() or 'no stderr'}")
        self._writer.write(data)
        await self._writer.drain()

    async def receive(self) -> bytes:
        """The next chunk of stdout; ``b""`` once the process has exited (or its output closed)."""
        return await self._stdout.get()

    def stderr_tail(self) -> str:
        return self._stderr.decode("utf-8", "replace").strip()[-1000:]

    async def exit_code(self) -> int | None:
        """The exit code once the process has exited, else None."""
        info = await asyncio.to_thread(self.sandbox._client.api.exec_inspect, self.exec_id)
        return None if info.get("Running") else info.get("ExitCode")

    async def aclose(self, grace: float = 3.0) -> None:
        """End of stdin, ``grace`` seconds to exit, then SIGKILL. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None and not self.exited.is_set():
            with contextlib.suppress(OSError, RuntimeError):
                if self._writer.can_write_eof():
                    self._writer.write_eof()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.exited.wait(), grace)
        if not self.exited.is_set() and self.sandbox.healthy:
            with contextlib.suppress(SandboxError):
                await self.sandbox.exec(["/bin/sh", "-c", f'kill -KILL "$(cat {self.pidfile})"'], 10)
        if self._writer is not None:
            self._writer.close()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        if self.sandbox.healthy:
            with contextlib.suppress(SandboxError):
                await self.sandbox.exec(["rm", "-f", self.pidfile], 10)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                kind, size = _HEADER.unpack(await self._reader.readexactly(_HEADER.size))
                payload = await self._reader.readexactly(size)
                if kind == 2:
                    self._stderr += payload
                    del self._stderr[:-STDERR_KEEP]
                elif payload:
                    self._stdout.put_nowait(payload)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.exited.set()
            self._stdout.put_nowait(b"")


class McpConnection:
    """An initialized MCP client session with a stdio server in a sandbox. See the module docstring."""

    def __init__(self, proc: StdioProcess, request_timeout: float) -> None:
        self.proc = proc
        self.request_timeout = request_timeout
        self.session: Any = None  # mcp.ClientSession, once initialized
        self.server_info: Any = None
        self.tools: list[Any] = []
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._owner: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    @classmethod
    async def start(
        cls,
        sandbox: DockerSandbox,
        cmd: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        startup_timeout: float = 30.0,
        request_timeout: float = 30.0,
    ) -> McpConnection:
        """Start the server, initialize the session and list its tools."""
        proc = await StdioProcess.start(sandbox, cmd, env=env, cwd=cwd)
        conn = cls(proc, request_timeout)
        conn._owner = asyncio.create_task(conn._own(), name=f"mcp-{proc.exec_id[:12]}")
        try:
            await asyncio.wait_for(asyncio.shield(conn._ready), startup_timeout)
        except BaseException as e:
            await conn.aclose()
            if isinstance(e, TimeoutError):
                raise SandboxError(
                    f"the MCP server {list(cmd)} in sandbox {sandbox.id[:12]} did not initialize within "
                    f"{startup_timeout}s: {proc.stderr_tail() or 'no stderr'}; check the command, or raise startup_timeout"
                ) from None
            if isinstance(e, SandboxError) or not isinstance(e, Exception):
                raise
            raise SandboxError(
                f"the MCP server {list(cmd)} in sandbox {sandbox.id[:12]} failed to start: {type(e).__name__}: {e}; "
                f"its stderr: {proc.stderr_tail() or 'empty'}"
            ) from e
        return conn

    async def call_tool(self, name: str, arguments: dict[str, Any], timeout: float | None = None) -> Any:
        """Call one tool; returns the ``mcp_types.CallToolResult`` (a tool's own failure is ``is_error``)."""
        if self.session is None or self._stop.is_set() or self.proc.exited.is_set():
            raise SandboxError(
                f"the MCP server {self.proc.cmd[0]} is not running ({self.error or 'closed or exited'}); "
                f"its stderr: {self.proc.stderr_tail() or 'empty'}; start a new connection"
            )
        wait = timeout or self.request_timeout
        try:
            return await asyncio.wait_for(self.session.call_tool(name, arguments), wait)
        except TimeoutError:
            raise SandboxError(f"the MCP tool {name!r} did not answer within {wait}s") from None

    async def aclose(self) -> None:
        """End the session and the server. Safe to call twice."""
        self._stop.set()
        if self._owner is not None and not self._ready.done():
            self._owner.cancel()  # still initializing: nothing to end gracefully
        if self._owner is not None:
            # asyncio.wait: the owner's own end (even cancelled) is not raised here, a cancel of ours is
            await asyncio.wait({self._owner}, timeout=10)
            if not self._owner.done():
                self._owner.cancel()
                await asyncio.wait({self._owner}, timeout=10)
        await self.proc.aclose()

    async def _own(self) -> None:
        """The task that enters and leaves the client session (and its task groups)."""
        from mcp import ClientSession

        try:
            async with _streams(self.proc) as (read, write), ClientSession(read, write) as session:
                init = await session.initialize()
                self.server_info = init.server_info
                self.tools = list((await session.list_tools()).tools)
                self.session = session
                self._ready.set_result(None)
                await self._stop.wait()
        except BaseException as e:  # reported through _ready or error
            self.error = e
            if not self._ready.done():
                if isinstance(e, asyncio.CancelledError):
                    self._ready.cancel()
                else:
                    self._ready.set_exception(e)
            if not isinstance(e, Exception):
                raise
        finally:
            self.session = None


@contextlib.asynccontextmanager
async def _streams(proc: StdioProcess) -> AsyncIterator[tuple[Any, Any]]:
    """The process's stdio as the anyio streams of an MCP session: newline-delimited JSON-RPC."""
    import anyio
    import mcp_types
    from mcp.shared.message import SessionMessage

    to_session, read = anyio.create_memory_object_stream[Any](16)
    write, from_session = anyio.create_memory_object_stream[Any](16)

    async def reader() -> None:
        buf = b""
        async with to_session:
            while chunk := await proc.receive():
                *lines, buf = (buf + chunk).split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    try:
                        msg: Any = SessionMessage(mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False))
                    except ValueError as e:
                        msg = e
                    await to_session.send(msg)

    async def writer() -> None:
        async with from_session:
            async for message in from_session:
                blob = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                try:
                    await proc.send(blob.encode() + b"\n")
                except (SandboxError, OSError):
                    return

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        tg.start_soon(writer)
        try:
            yield read, write
        finally:
            tg.cancel_scope.cancel()
            write.close()
            read.close()
