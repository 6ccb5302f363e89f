"""``JavaEngine``: one JVM running a game engine's jar (ScienceWorld, TextWorldExpress) behind py4j.

One engine per env: started when the env is made, stopped at ``close``; episodes reuse it. Cleanup:

- the JVM is recorded in a pid file (``turngym.sandboxes.processes``, kind ``jvm``); every start first
  kills the JVMs of owners that are gone (a run that was SIGKILLed), and an ``atexit`` hook kills ours;
- py4j's ``--die-on-broken-pipe``: the JVM also exits by itself when its owner's end of its stdin closes.

Start-up: the first JVM of a jar dumps the classes it loaded into a class-data archive (Java's AppCDS,
``$XDG_CACHE_HOME/turngym/jvm``) when it stops; the next ones map it, which halves their start.

A call that fails because the JVM died (or the call itself failed in Java) raises ``SandboxError``; the
env ends that episode with the error and ``ensure_running`` starts a fresh JVM at the next reset.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from turngym.core.errors import SandboxError
from turngym.sandboxes.processes import OwnedProcess, new_marker, reap_orphans

T = TypeVar("T")
KIND = "jvm"
#: a small heap and one GC thread: a text world needs little, and several run on a 2-core machine
JAVA_OPTS = ("-Xms64m", "-Xmx2g", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto")
#: seconds one call may take before the JVM counts as hung (ScienceWorld's slowest gold paths take ~40 s on 2 busy cores)
CALL_TIMEOUT = 300
#: seconds a JVM may take to exit and write its class-data archive
ARCHIVE_TIMEOUT = 30


class JavaEngine:
    """A JVM serving ``entry`` (a Java class with a no-argument constructor) from ``jar``, through py4j.

    ``server`` is the Java object; call it inside ``call(lambda: server.method(...), what)`` so that a dead
    JVM becomes a ``SandboxError``."""

    def __init__(self, *, name: str, jar: str, cwd: str, entry: str, java_opts: Sequence[str] = JAVA_OPTS) -> None:
        self.name, self.jar, self.cwd, self.entry = name, jar, cwd, entry
        self.java_opts = tuple(java_opts)
        self._gateway: Any = None
        self._proc: subprocess.Popen | None = None
        self._owned: OwnedProcess | None = None
        #: (where this JVM writes the class-data archive as it exits, where it goes once complete)
        self._dumping: tuple[Path, Path] | None = None
        self.server: Any = None
        #: how many JVMs this engine started (1 + restarts)
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self.server is not None

    def ensure_running(self) -> None:
        """Start the JVM if it is not running (first use, or after it died)."""
        if not self.running:
            self.stop()
            self._start()

    def _start(self) -> None:
        from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway

        reap_orphans(KIND)
        marker = new_marker(KIND)
        opts = [*self.java_opts, *self._archive_opts(), f"-Dturngym.owner={marker}"]
        try:
            port, token, proc = launch_gateway(
                classpath=self.jar, javaopts=opts, die_on_exit=True, cwd=self.cwd, enable_auth=True, return_proc=True
            )
        except FileNotFoundError:
            raise SandboxError(
                f"{self.name} cannot start: `java` is not on PATH; install a Java runtime (`apt-get install "
                "openjdk-17-jre-headless`, which scripts/setup.sh does) or put a Java 11+ `java` on PATH"
            ) from None
        except (OSError, ValueError) as e:  # ValueError: the JVM exited before printing its port
            raise SandboxError(
                f"the {self.name} JVM did not start ({type(e).__name__}: {e}): run `java -version` to see whether "
                f"Java works, and `java -jar {self.jar}` for the engine's own error"
            ) from None
        self._proc = proc
        self._owned = OwnedProcess.record(KIND, proc.pid, marker)
        self._gateway = JavaGateway(
            gateway_parameters=GatewayParameters(
                port=port, auth_token=token, auto_field=True, auto_close=True, read_timeout=CALL_TIMEOUT
            ),
            java_process=proc,
        )
        self.server = self.call(lambda: _new_object(self._gateway, self.entry), "start")
        self.starts += 1

    def call(self, fn: Callable[[], T], what: str) -> T:
        """``fn()``; a JVM that died or a call that failed in Java raises ``SandboxError`` naming ``what``."""
        from py4j.protocol import Py4JError, Py4JJavaError

        try:
            return fn()
        except Py4JJavaError as e:
            raise SandboxError(f"{self.name} failed at {what}: {str(e.java_exception)[:300]}") from None
        except Py4JError as e:
            code = self._proc.poll() if self._proc is not None else None
            self.stop()
            died = f"the JVM exited with code {code}" if code is not None else f"no answer in {CALL_TIMEOUT} s"
            raise SandboxError(
                f"{self.name} lost its engine at {what}: {died} ({type(e).__name__}); the episode ends here and "
                "the next reset starts a fresh JVM"
            ) from None

    def _archive_opts(self) -> list[str]:
        """Map the jar's class-data archive, or (none yet) have this JVM write it as it exits."""
        archive = archive_path(self.jar)
        if archive is None:
            return []
        if archive.exists():
            return [f"-XX:SharedArchiveFile={archive}"]
        tmp = archive.with_name(f"{archive.stem}.{os.getpid()}.tmp")
        self._dumping = (tmp, archive)
        return [f"-XX:ArchiveClassesAtExit={tmp}"]

    def stop(self) -> None:
        """Stop the JVM (and forget it). Safe to call twice, and after the JVM died."""
        gateway, proc, owned = self._gateway, self._proc, self._owned
        self._gateway = self._proc = self._owned = self.server = None
        if gateway is not None:
            with contextlib.suppress(Exception):
                gateway.close(keep_callback_server=False, close_callback_server_connections=True)
        if proc is not None and self._dumping is not None:
            self._exit_with_archive(proc)
        if owned is not None:
            owned.kill()
        if proc is not None:
            with contextlib.suppress(Exception):
                proc.kill()
                proc.wait(timeout=10)
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()

    def _exit_with_archive(self, proc: subprocess.Popen) -> None:
        """Let the JVM exit by itself (its stdin closed), so that it writes the archive; then keep it."""
        (tmp, archive), self._dumping = self._dumping, None
        with contextlib.suppress(Exception):
            proc.stdin.close()
            proc.wait(timeout=ARCHIVE_TIMEOUT)
        if proc.poll() == 0 and tmp.exists():
            tmp.replace(archive)
        tmp.unlink(missing_ok=True)


def archive_path(jar: str) -> Path | None:
    """The class-data archive of ``jar`` for the ``java`` on PATH (both by path, size and time); None without java."""
    java = shutil.which("java")
    if java is None:
        return None
    parts = [os.path.realpath(java), jar]
    key = "|".join(f"{p}:{os.stat(p).st_size}:{os.stat(p).st_mtime_ns}" for p in parts)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "turngym" / "jvm"
    root.mkdir(parents=True, exist_ok=True)
    return root / f"{Path(jar).stem}-{digest}.jsa"


def _new_object(gateway: Any, entry: str) -> Any:
    """``new entry()`` in the JVM of ``gateway``, for a dotted Java class name."""
    cls = gateway.jvm
    for part in entry.split("."):
        cls = getattr(cls, part)
    return cls()
