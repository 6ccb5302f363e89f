"""Cut a call that runs past its time, in its own thread: how the adapter bounds a TextArena step.

    try:
        done = call_within(10.0, engine.step, move)
    except TimeUp:
        ...  # the step took over 10 s: the episode ends truncated

TextArena's games are plain Python, and a few never return on some inputs (an FFA game whose players
are all eliminated rotates its turn forever). No flag can stop such a loop from outside, so
``call_within`` raises ``TimeUp`` inside the call itself once its time is up: one daemon thread, the
watchdog, sleeps until the earliest deadline and then raises ``TimeUp`` in the thread still inside
its call (CPython's ``PyThreadState_SetAsyncExc``, as debuggers stop a thread), again every
``REPEAT`` seconds while the call swallows it. The call unwinds like any call that raised: nothing
keeps running after it, and the watchdog sleeps while no call is timed.

``TimeUp`` is a ``BaseException``, so a game's ``except Exception`` does not swallow it. A call blocked
in C (a sleep, a socket read) is cut only when it returns to Python. Where the interpreter has no
``PyThreadState_SetAsyncExc`` (not CPython), calls are not cut.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from turngym.core.errors import TimeUp

T = TypeVar("T")

#: seconds between two ``TimeUp`` raised in a call that swallowed the first
REPEAT = 0.2

_lock = threading.Lock()  # a C-level lock: taking and releasing it runs no Python code a TimeUp could hit
_calls: dict[int, list[Any]] = {}  # token -> [deadline, thread id, fired]
_tokens = itertools.count()
_wake = threading.Event()
_next_wake = float("inf")  # when the watchdog wakes next by itself
_watchdog: threading.Thread | None = None
_set_async_exc = getattr(getattr(ctypes, "pythonapi", None), "PyThreadState_SetAsyncExc", None)


def call_within(seconds: float, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, cut by ``TimeUp`` raised inside it once it has run ``seconds``."""
    if _set_async_exc is None:
        return fn(*args)
    token, deadline = next(_tokens), time.monotonic() + seconds
    with _lock:
        _calls[token] = [deadline, threading.get_ident(), False]
        early = deadline < _next_wake
    if early:  # the watchdog sleeps past this deadline (or until told): tell it
        _start_watchdog()
        _wake.set()
    try:
        return fn(*args)
    finally:
        # inline, not a helper: a TimeUp delivered on entering a helper would skip it. One delivered
        # here is dropped and the unregistering retried: the call is over either way
        while True:
            try:
                with _lock:
                    entry = _calls.pop(token, None)
                    if entry is not None and entry[2]:
                        _set_async_exc(ctypes.c_ulong(entry[1]), None)  # NULL: clear a TimeUp not yet delivered
                break
            except TimeUp:
                continue


def _start_watchdog() -> None:
    global _watchdog
    with _lock:
        if _watchdog is None:
            _watchdog = threading.Thread(target=_watch, name="turngym-textarena-deadline", daemon=True)
            _watchdog.start()


def _watch() -> None:
    while True:
        _wake.wait(_fire_due())
        _wake.clear()


def _fire_due() -> float | None:
    """Raise ``TimeUp`` in every call past its deadline; the seconds until the next deadline (None: none)."""
    global _next_wake
    now = time.monotonic()
    with _lock:
        for entry in _calls.values():
            if entry[0] <= now:
                _set_async_exc(ctypes.c_ulong(entry[1]), ctypes.py_object(TimeUp))
                entry[0], entry[2] = now + REPEAT, True
        _next_wake = min((entry[0] for entry in _calls.values()), default=float("inf"))
    return None if _next_wake == float("inf") else max(0.0, _next_wake - now)
