"""Pid files and the reaper of helper processes (``turngym.sandboxes.processes``)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from turngym.sandboxes.processes import OwnedProcess, new_marker, reap_orphans

KIND = "test-helper"


def helper(marker: str) -> subprocess.Popen:
    """A process that sleeps, with ``marker`` on its command line."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", marker])


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def gone(proc: subprocess.Popen, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc.poll() is not None


def test_reap_kills_the_processes_of_a_gone_owner_only():
    mine, orphan = helper(new_marker(KIND)), helper(new_marker(KIND))
    try:
        kept = OwnedProcess.record(KIND, mine.pid, mine.args[-1])
        lost = OwnedProcess.record(KIND, orphan.pid, orphan.args[-1])
        rec = json.loads(lost.pid_file.read_text())
        lost.pid_file.write_text(json.dumps(rec | {"owner": dead_pid()}))  # as a SIGKILLed owner leaves it
        assert reap_orphans(KIND) == [orphan.pid]
        assert gone(orphan) and not lost.pid_file.exists()
        assert mine.poll() is None and kept.pid_file.exists()  # a live owner's process stays
        kept.kill()
        kept.kill()  # twice is safe
        assert gone(mine) and not kept.pid_file.exists()
    finally:
        for p in (mine, orphan):
            p.kill()
            p.wait()


def test_reap_never_kills_a_recycled_pid():
    other = helper("not-the-marker")
    try:
        owned = OwnedProcess.record(KIND, other.pid, new_marker(KIND))  # the pid now runs something else
        owned.pid_file.write_text(json.dumps(json.loads(owned.pid_file.read_text()) | {"owner": dead_pid()}))
        assert reap_orphans(KIND) == []
        assert other.poll() is None and not owned.pid_file.exists()
    finally:
        other.kill()
        other.wait()
