"""Who owns a turngym container, and removing the ones whose owner is gone.

Every container turngym starts carries labels naming its owner:

    turngym=1                  turngym.run=<run id>
    turngym.owner.host=<host>  turngym.owner.pid=<pid>
    turngym.owner.start=<boot id>:<process start time in clock ticks>

A pid alone is not enough (pids are reused): the owner counts as alive only if a process with that
pid exists on this host, in this boot, with the same start time. ``reap`` runs at pool start-up and
behind ``turngym sandbox gc``; ``cleanup_own`` at a normal exit (atexit, SIGTERM).
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

LABEL = "turngym"
FILTER = {"label": f"{LABEL}=1"}


@cache
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def start_ticks(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks (field 22 of /proc/PID/stat), so a reused pid is not
    mistaken for it; None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]  # field 22, starttime
    except (OSError, IndexError):
        return None


def process_key(pid: int) -> str | None:
    """``boot id:start time`` of a live process, None if there is no such process."""
    ticks = start_ticks(pid)
    return f"{_boot_id()}:{ticks}" if ticks is not None else None


def owner_labels(run_id: str = "") -> dict[str, str]:
    """The labels of a container owned by this process."""
    pid = os.getpid()
    return {
        LABEL: "1",
        f"{LABEL}.run": run_id,
        f"{LABEL}.owner.host": socket.gethostname(),
        f"{LABEL}.owner.pid": str(pid),
        f"{LABEL}.owner.start": process_key(pid) or "",
    }


def owner_alive(labels: dict[str, str]) -> bool | None:
    """True if the owning process still runs, False if it is gone, None if it ran on another host."""
    if labels.get(f"{LABEL}.owner.host") != socket.gethostname():
        return None
    try:
        pid = int(labels.get(f"{LABEL}.owner.pid", ""))
    except ValueError:
        return False
    key = process_key(pid)
    return key is not None and key == labels.get(f"{LABEL}.owner.start")


@dataclass(frozen=True)
class SandboxRecord:
    """One turngym container, as ``turngym sandbox ls`` shows it."""

    id: str
    name: str
    image: str
    status: str
    run: str
    owner_host: str
    owner_pid: str
    owner_alive: bool | None
    created: str


def docker_client() -> Any:
    """A docker SDK client for the local engine, or a ``SandboxError`` saying how to get one."""
    from turngym.core.errors import SandboxError

    try:
        import docker
    except ImportError:
        raise SandboxError("the docker Python package is missing: pip install 'turngym[docker]'") from None
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as e:
        raise SandboxError(
            f"no Docker engine answers ({type(e).__name__}: {e}); start dockerd "
            "(scripts/setup/40-docker.sh does) or set DOCKER_HOST"
        ) from None
    return client


def list_sandboxes(client: Any = None) -> list[SandboxRecord]:
    """Every turngym container the engine knows, running or not."""
    client = client or docker_client()
    out = []
    for c in client.api.containers(all=True, filters=FILTER):
        labels = c.get("Labels") or {}
        out.append(
            SandboxRecord(
                id=c["Id"][:12],
                name=(c.get("Names") or ["?"])[0].lstrip("/"),
                image=c.get("Image", ""),
                status=c.get("Status", ""),
                run=labels.get(f"{LABEL}.run", ""),
                owner_host=labels.get(f"{LABEL}.owner.host", ""),
                owner_pid=labels.get(f"{LABEL}.owner.pid", ""),
                owner_alive=owner_alive(labels),
                created=str(c.get("Created", "")),
            )
        )
    return out


def remove_container(client: Any, cid: str) -> bool:
    """Force-remove one container; False if it was already gone (or being removed)."""
    import docker.errors

    try:
        client.api.remove_container(cid, force=True)
        return True
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as e:
        if e.status_code == 409:  # removal already in progress (auto-remove)
            return False
        raise


def reap(client: Any = None, *, all_hosts: bool = False, everything: bool = False) -> list[SandboxRecord]:
    """Remove turngym containers whose owner process is gone; returns what was removed.

    ``all_hosts`` also removes containers owned by other hosts (whose liveness cannot be checked
    from here); ``everything`` removes every turngym container, live owners included.
    """
    client = client or docker_client()
    removed = []
    for rec in list_sandboxes(client):
        dead = rec.owner_alive is False or (all_hosts and rec.owner_alive is None)
        if (everything or dead) and remove_container(client, rec.id):
            removed.append(rec)
    return removed


def cleanup_own() -> int:
    """Remove every container this process owns (atexit and SIGTERM call it); returns how many."""
    try:
        import docker

        client = docker.from_env(timeout=30)
        cids = [
            c["Id"]
            for c in client.api.containers(all=True, filters={"label": f"{LABEL}.owner.pid={os.getpid()}"})
            if (c.get("Labels") or {}).get(f"{LABEL}.owner.start") == process_key(os.getpid())
        ]
        for cid in cids:
            remove_container(client, cid)
        return len(cids)
    except Exception:  # at interpreter exit nothing may raise
        return 0


_installed = False
_lock = threading.Lock()


def install_exit_cleanup() -> None:
    """Once per process: remove this process's containers at exit, also on SIGTERM and SIGHUP
    (where those still have their default action). SIGKILL is what ``reap`` is for."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    atexit.register(cleanup_own)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _exit_on_signal)


def _exit_on_signal(signum: int, _frame: Any) -> None:
    cleanup_own()
    signal.signal(signum, signal.SIG_DFL)
    sys.exit(128 + signum)
