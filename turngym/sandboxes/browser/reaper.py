"""Pid files and the reaper: no Chromium outlives the process that started it.

Each browser's process group is recorded in a pid file (runtime dir, with the owning process and its
start time). Each launch first kills the browsers of owners that are gone (a runner that was
SIGKILLed); ``reap_orphans`` may be called any time.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from turngym.sandboxes.browser.config import BrowserConfig
from turngym.sandboxes.processes import cmdline, kill_group, reap_pid_files

__all__ = ["cmdline", "find_marked", "kill_group", "reap_orphans", "runtime_dir"]


def runtime_dir(config: BrowserConfig | None = None) -> Path:
    """Where the pid files live: ``config.runtime_dir``, $XDG_RUNTIME_DIR/turngym or /tmp/turngym-<uid>."""
    base = (config.runtime_dir if config else None) or os.environ.get("XDG_RUNTIME_DIR")
    path = Path(base) / "turngym" / "browsers" if base else Path(tempfile.gettempdir()) / f"turngym-{os.getuid()}" / "browsers"
    path.mkdir(parents=True, exist_ok=True)
    return path


def find_marked(marker: str) -> list[int]:
    """Pids of the processes whose command line carries ``marker`` (the browser's main process)."""
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and marker in cmdline(int(entry.name)):
            out.append(int(entry.name))
    return out


def reap_orphans(config: BrowserConfig | None = None) -> list[int]:
    """Kill the browsers whose owning process is gone; returns their pids. Safe to call any time."""
    return reap_pid_files(runtime_dir(config), "Chromium")
