"""Give each TextArena env its own random streams without touching the caller's global ones.

TextArena's games draw from the global ``random`` module (``State`` seeds it with
``random.seed(seed)``) and a few from ``numpy.random``. Saving and restoring the global states
around every step costs more than the step itself (``random.getstate`` ~25 us, numpy's ~190 us), so
instead the name ``random`` (and ``np``/``numpy`` where a module uses ``numpy.random``) inside
TextArena's own modules is rebound once to a router. While an adapter env runs (``activate``), the
router forwards to that env's private ``random.Random`` and ``numpy.random.RandomState``; at any
other time it forwards to the real modules, so code that uses TextArena directly sees no change.

The same rebinding routes TextArena's ``print`` calls (games print their internals: "Generated puzzle
in 3 attempts", "Correct: 2, Total: 5") to the ``logging`` module, logger ``turngym.textarena`` at
INFO, while an adapter env runs: they never reach the user's terminal or a trainer's stdout.

Not thread-safe: two threads stepping TextArena envs at once would share the active streams.
"""

from __future__ import annotations

import builtins
import logging
import random
import sys
import types
from typing import Any

import numpy

_active: Streams | None = None
_patched: set[str] = set()
_LOG = logging.getLogger("turngym.textarena")


class Streams:
    """One env's random streams: Python's ``random.Random`` and a lazily made numpy ``RandomState``."""

    __slots__ = ("_np", "py")

    def __init__(self, seed: int | None = None) -> None:
        self.py = random.Random(seed)
        self._np: numpy.random.RandomState | None = None

    def seed(self, seed: int | None) -> None:
        self.py.seed(seed)
        self._np = None

    @property
    def np(self) -> numpy.random.RandomState:
        if self._np is None:  # derived from the Python stream, so one seed fixes both
            self._np = numpy.random.RandomState(self.py.getrandbits(32))
        return self._np


def use(streams: Streams | None) -> Streams | None:
    """Make ``streams`` the active ones; returns the previous, to pass back to ``use`` afterwards
    (the hot-path form of ``activate``)."""
    global _active
    prev, _active = _active, streams
    return prev


class activate:  # lower case: used as a context manager, like contextlib's
    """``with activate(streams): ...``: TextArena code inside draws from ``streams``. Re-entrant."""

    __slots__ = ("_prev", "_streams")

    def __init__(self, streams: Streams) -> None:
        self._streams = streams

    def __enter__(self) -> Streams:
        global _active
        self._prev = _active
        _active = self._streams
        return self._streams

    def __exit__(self, *exc: object) -> None:
        global _active
        _active = self._prev


class _RandomRouter(types.ModuleType):
    """Stands in for the ``random`` module inside TextArena's modules."""

    def __getattr__(self, name: str) -> Any:
        streams = _active
        if streams is not None:
            fn = getattr(streams.py, name, None)
            if fn is not None and name[0] != "_" and name not in ("Random", "SystemRandom"):
                return fn
        return getattr(random, name)


class _NumpyRandomRouter(types.ModuleType):
    """Stands in for ``numpy.random``: the legacy module functions, drawn from the env's RandomState."""

    def __getattr__(self, name: str) -> Any:
        streams = _active
        if streams is not None and name[0] != "_":
            fn = getattr(streams.np, name, None)
            if fn is not None:
                return fn
        return getattr(numpy.random, name)


class _NumpyRouter(types.ModuleType):
    """Stands in for ``numpy`` in modules that call ``numpy.random``; everything else is numpy's."""

    def __getattr__(self, name: str) -> Any:
        if name == "random":
            return _NP_RANDOM
        return getattr(numpy, name)


def _print(*values: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False) -> None:
    """Stands in for ``print`` inside TextArena's modules: to the log while an adapter env runs."""
    if _active is None or (file is not None and file is not sys.stdout):
        builtins.print(*values, sep=sep, end=end, file=file, flush=flush)
    elif _LOG.isEnabledFor(logging.INFO):
        _LOG.info("%s", (" " if sep is None else sep).join(map(str, values)))


_RANDOM = _RandomRouter("random")
_NP_RANDOM = _NumpyRandomRouter("numpy.random")
_NUMPY = _NumpyRouter("numpy")


def route_textarena_modules() -> None:
    """Rebind ``random`` (and ``numpy`` where it draws from ``numpy.random``) and ``print`` in every
    loaded ``textarena`` module not yet seen. Call it after TextArena imported a game's module."""
    for name, module in list(sys.modules.items()):
        if name in _patched or not (name == "textarena" or name.startswith("textarena.")) or module is None:
            continue
        _patched.add(name)
        ns = vars(module)
        ns.setdefault("print", _print)
        if ns.get("random") is random:
            ns["random"] = _RANDOM
        for alias in ("np", "numpy"):
            if ns.get(alias) is numpy and _uses_numpy_random(module, alias):
                ns[alias] = _NUMPY


def _uses_numpy_random(module: types.ModuleType, alias: str) -> bool:
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            return f"{alias}.random." in f.read()
    except OSError:
        return False
