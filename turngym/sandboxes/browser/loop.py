"""The event loop of the sync API: one loop in a daemon thread per process, shared by every browser env used
through ``reset``/``step``/``close`` (rather than ``areset``/``astep``/``aclose``).

``BrowserSandbox.shared`` keeps one Chromium per event loop; a sync env used to run on a private loop of its
own, so each started its own Chromium (seconds, and one more process tree per env). On this one loop, the sync
envs of a process share one Chromium, ref-counted as on any loop: the last env's ``close`` closes it, the
``atexit`` hook of ``sandbox.py`` kills it if the interpreter exits first, and the pid-file reaper kills it
after a crash of the process. The thread is made again after a fork (a child does not inherit threads).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any

from turngym.core.env import refuse_in_running_loop

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_owner_pid = 0


def sync_loop() -> asyncio.AbstractEventLoop:
    """The process's sync-API loop, started on first use (again after a fork or if its thread ended)."""
    global _loop, _owner_pid
    with _lock:
        if _loop is None or _owner_pid != os.getpid() or _loop.is_closed() or not _loop.is_running():
            loop = asyncio.new_event_loop()
            started = threading.Event()
            thread = threading.Thread(target=_serve, args=(loop, started), name="turngym-browser-loop", daemon=True)
            thread.start()
            started.wait()
            _loop, _owner_pid = loop, os.getpid()
        return _loop


def _serve(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(started.set)
    loop.run_forever()


def run_sync(coro: Coroutine[Any, Any, Any], what: str = "a browser env") -> Any:
    """Run ``coro`` on the sync-API loop and wait for its result (its exception is raised here)."""
    refuse_in_running_loop(coro, what)
    future = asyncio.run_coroutine_threadsafe(coro, sync_loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()  # Ctrl-C while waiting: stop the coroutine too
        raise
