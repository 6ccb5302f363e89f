"""Pid files and the reaper: no Chromium outlives the process that started it.

Each browser's process group is recorded in a pid file (runtime dir, with the owning process and its
start time). Each launch first kills the browsers of owners that are gone (a runner that was
SIGKILLed); ``reap_orphans`` may be called any time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import tempfile
from pathlib import Path

from turngym.sandboxes.browser.config import BrowserConfig
from turngym.sandboxes.reaper import start_ticks

log = logging.getLogger(__name__)


def runtime_dir(config: BrowserConfig | None = None) -> Path:
    """Where the pid files live: ``config.runtime_dir``, $XDG_RUNTIME_DIR/turngym or /tmp/turngym-<uid>."""
    base = (config.runtime_dir if config else None) or os.environ.get("XDG_RUNTIME_DIR")
    path = Path(base) / "turngym" / "browsers" if base else Path(tempfile.gettempdir()) / f"turngym-{os.getuid()}" / "browsers"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cmdline(pid: int) -> str:
    """The command line of ``pid``, arguments joined by spaces (empty if there is no such process)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def find_marked(marker: str) -> list[int]:
    """Pids of the processes whose command line carries ``marker`` (the browser's main process)."""
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and marker in cmdline(int(entry.name)):
            out.append(int(entry.name))
    return out


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def reap_orphans(config: BrowserConfig | None = None) -> list[int]:
    """Kill the browsers whose owning process is gone; returns their pids. Safe to call any time."""
    killed = []
    for file in runtime_dir(config).glob("*.json"):
        try:
            rec = json.loads(file.read_text())
        except (OSError, ValueError):
            file.unlink(missing_ok=True)
            continue
        owner_alive = start_ticks(rec["owner"]) == rec.get("owner_start")
        if owner_alive:
            continue
        for pid in rec.get("pids", []):
            if rec["marker"] in cmdline(pid):  # not a recycled pid
                kill_group(pid)
                killed.append(pid)
        file.unlink(missing_ok=True)
    if killed:
        log.warning("killed %d orphaned Chromium process(es) of a finished owner: %s", len(killed), killed)
    return killed

