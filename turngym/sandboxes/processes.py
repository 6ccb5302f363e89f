"""Helper processes (a game engine's JVM...) that must not outlive the process that started them.

    reap_orphans("jvm")                       # first: kill the ones whose owner is gone
    proc = subprocess.Popen([..., marker])    # the marker (``new_marker``) goes on its command line
    owned = OwnedProcess.record("jvm", proc.pid, marker)
    ...
    owned.kill()                              # at close; an atexit hook kills what is left

Each process is recorded in a pid file, ``<runtime dir>/processes/<kind>/<owner pid>-<id>.json``, with
its pid, the marker on its command line (so a reused pid is never killed) and its owner's pid and
start time (so a reused owner pid does not keep it alive). ``reap_orphans(kind)`` kills the processes
of owners that are gone (a run that was SIGKILLed); the next start of the same kind calls it.
The browser sandbox keeps its pid files in the same format in its own directory and reaps them with
``reap_pid_files`` (``sandboxes/browser/reaper.py``).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from turngym.sandboxes.reaper import start_ticks

log = logging.getLogger(__name__)


def runtime_dir(kind: str) -> Path:
    """Where the pid files of ``kind`` live: $XDG_RUNTIME_DIR/turngym/processes/<kind>, else under /tmp."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    root = Path(base) / "turngym" if base else Path(tempfile.gettempdir()) / f"turngym-{os.getuid()}"
    path = root / "processes" / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_marker(kind: str) -> str:
    """A string unique to one process of ``kind``, to put on its command line."""
    return f"turngym-{kind}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


@dataclass
class OwnedProcess:
    """One helper process recorded in a pid file; ``kill`` ends it (and its process group, if it leads one)."""

    kind: str
    pid: int
    marker: str
    pid_file: Path

    @classmethod
    def record(cls, kind: str, pid: int, marker: str) -> OwnedProcess:
        owner = os.getpid()
        rec = {"pids": [pid], "marker": marker, "owner": owner, "owner_start": start_ticks(owner)}
        path = runtime_dir(kind) / f"{owner}-{marker[-12:]}.json"
        path.write_text(json.dumps(rec))
        owned = cls(kind, pid, marker, path)
        _live_add(owned)
        return owned

    def alive(self) -> bool:
        """The process still runs (and is the one we started)."""
        return self.marker in cmdline(self.pid)

    def kill(self) -> None:
        """Kill it now (SIGKILL) and remove its pid file. Safe to call twice."""
        if self.alive():
            kill_group(self.pid)
        self.pid_file.unlink(missing_ok=True)
        _LIVE.discard(self)

    def __hash__(self) -> int:
        return hash(self.marker)


def cmdline(pid: int) -> str:
    """The command line of ``pid``, arguments joined by spaces (empty if there is no such process)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill_group(pid: int) -> None:
    """SIGKILL ``pid``'s process group (if it leads one) and ``pid``; a process already gone is no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def reap_orphans(kind: str) -> list[int]:
    """Kill the processes of ``kind`` whose owning process is gone; their pids. Safe to call any time."""
    return reap_pid_files(runtime_dir(kind), kind)


def reap_pid_files(directory: Path, what: str) -> list[int]:
    """Kill the processes recorded in the pid files of ``directory`` whose owning process is gone (``what``
    names them in the log); their pids. A pid whose command line lacks the record's marker is not ours."""
    killed = []
    for file in directory.glob("*.json"):
        try:
            rec = json.loads(file.read_text())
            owner, owner_start, marker, pids = rec["owner"], rec.get("owner_start"), rec["marker"], rec["pids"]
        except (OSError, ValueError, KeyError, TypeError):
            file.unlink(missing_ok=True)
            continue
        if start_ticks(owner) == owner_start:
            continue
        for pid in pids:
            if marker in cmdline(pid):  # not a recycled pid
                kill_group(pid)
                killed.append(pid)
        file.unlink(missing_ok=True)
    if killed:
        log.warning("killed %d orphaned %s process(es) of a finished owner: %s", len(killed), what, killed)
    return killed


_LIVE: set[OwnedProcess] = set()
_hook_lock = threading.Lock()
_hook_installed = False


def _live_add(owned: OwnedProcess) -> None:
    """Track ``owned`` for the atexit hook (installed once per process)."""
    global _hook_installed
    with _hook_lock:
        _LIVE.add(owned)
        if not _hook_installed:
            atexit.register(_kill_live)
            _hook_installed = True


def _kill_live() -> None:
    for owned in list(_LIVE):
        owned.kill()
