"""The sandbox contract (DESIGN.md, Sandboxes): an isolated place where an env runs commands.

    result = await sandbox.exec("python3 -c 'print(1)'", timeout=10)
    result.exit_code, result.stdout, result.stderr, result.timed_out, result.duration
    await sandbox.write_file("a.txt", b"data"); await sandbox.read_file("a.txt")
    await sandbox.reset()     # files and processes of the previous episode are gone
    await sandbox.close()     # safe to call twice

Sandboxes import nothing of envs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict


class ExecResult(BaseModel):
    """What one command did. ``exit_code`` is negative (-signal) when a signal killed it."""

    model_config = ConfigDict(frozen=True)
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    @property
    def output(self) -> str:
        """stdout and stderr together, as a terminal would show them (stdout first)."""
        if self.stdout and self.stderr and not self.stdout.endswith("\n"):
            return self.stdout + "\n" + self.stderr
        return self.stdout + self.stderr


class Sandbox(ABC):
    """An isolated machine for one episode at a time."""

    @abstractmethod
    async def exec(
        self,
        cmd: str | Sequence[str],
        timeout: float | None = 30.0,
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
    ) -> ExecResult:
        """Run ``cmd`` (a shell command line, or an argv list); at ``timeout`` seconds the command and
        its children are killed and ``timed_out`` is set. The sandbox stays usable."""

    @abstractmethod
    async def write_file(self, path: str, data: bytes | str, *, mode: int = 0o644) -> None:
        """Write a file (parents created); a relative path is inside the work directory."""

    @abstractmethod
    async def read_file(self, path: str) -> bytes:
        """The bytes of a file; a relative path is inside the work directory."""

    @abstractmethod
    async def reset(self) -> None:
        """Back to a clean state: every process killed, the writable directories emptied."""

    @abstractmethod
    async def close(self) -> None:
        """Release the sandbox for good. Safe to call twice."""

    async def __aenter__(self) -> Sandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
