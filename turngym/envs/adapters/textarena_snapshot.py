"""Snapshots of TextArena games: the engine's object graph and the env's random streams, in one pickle.

``TextArenaEnv.snapshot()`` pickles the adapter's attributes together: TextArena's env object (its
``State``, board, deck, game state), the env's random streams (``_routing.Streams``: TextArena's global
``random`` calls draw from them, so restoring them restores the game's randomness for this env alone),
the opponents and their random stream. One pickle keeps shared objects shared: a game that keeps a
bound method of the streams (Secretary's ``value_sampler``) draws from the restored streams.

What the game loaded when it was made and only reads is not copied (``read_only_resources``): word
lists of more than 1000 words (``reset`` takes them as read-only too) and TextArena's
``EnglishDictionary``. The pickle names them by attribute and ``restore`` takes the restoring env's own,
which equal them since it was made with the same id and arguments: a Wordle snapshot is about 11 kB,
not 5 MB.

What cannot be saved: an engine that holds TextArena agents (an LLM judge or player) or an opponent
callable that does not pickle (``unsupported_reason``, the env's ``snapshot_unsupported``); an engine
attribute that does not pickle (a thread, a file) makes ``snapshot()`` raise ``SnapshotUnsupported``
naming it (``dumps``).
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from turngym.core.errors import SnapshotError, SnapshotUnsupported

#: TextArena classes whose objects a game loads when made and only reads (word lookups)
READ_ONLY_TYPES = frozenset({"EnglishDictionary"})
_PICKLE_ERRORS = (pickle.PicklingError, TypeError, AttributeError)


def read_only_resources(engine: Any, pristine: dict[str, Any]) -> dict[str, Any]:
    """The attributes of a just-made TextArena ``engine`` that snapshots name instead of copying: the
    containers that ``pristine`` (the small ones ``reset`` restores) leaves out, and lookup objects."""
    return {
        name: value
        for name, value in vars(engine).items()
        if name != "state"
        and name not in pristine
        and (isinstance(value, (list, dict, set)) or type(value).__name__ in READ_ONLY_TYPES)
    }


def unsupported_reason(game: str, engine: Any, opponent: Any, resources: dict[str, Any]) -> str | None:
    """Why an env of ``game`` (its just-made ``engine``, its ``opponent``) cannot be snapshotted; None if it can."""
    import textarena as ta

    for name, value in vars(engine).items():
        if name not in resources and _holds(value, ta.Agent):
            return (
                f"TextArena's {game} engine holds a model client (its attribute {name!r}, a {type(value).__name__}, "
                "holds TextArena agents), whose answers a snapshot can neither save nor replay"
            )
    if callable(opponent):
        try:
            pickle.dumps(opponent, protocol=5)
        except _PICKLE_ERRORS as e:
            return (
                f"its opponent {opponent!r} does not pickle ({e}): pass a module-level function or a picklable "
                "object as opponent (or 'random'/'first-legal') to snapshot this game"
            )
    return None


def dumps(state: dict[str, Any], resources: dict[str, Any], game: str) -> bytes:
    """``state`` (the env's attributes) pickled, ``resources`` named rather than copied."""
    try:
        return _pickle(state, resources)
    except _PICKLE_ERRORS as e:
        where = _unpicklable(state, resources)
        raise SnapshotUnsupported(
            f"TextArena's {game} cannot be snapshotted: {where} does not pickle ({e}); a game that holds threads, "
            "files or model clients cannot be saved as bytes. To go back to a turn of an episode, reset with its "
            "seed and replay its actions"
        ) from None


def loads(data: bytes, resources: dict[str, Any], game: str) -> dict[str, Any]:
    """The state that ``dumps`` pickled, its named resources taken from ``resources``."""
    unpickler = pickle.Unpickler(io.BytesIO(data))
    unpickler.persistent_load = lambda name: resources[name]  # type: ignore[method-assign]
    try:
        return unpickler.load()
    except Exception as e:  # noqa: BLE001 - a pickle that does not load can raise almost anything
        raise SnapshotError(
            f"the snapshot of TextArena's {game} does not load here ({type(e).__name__}: {e}): restore it with the "
            "TextArena version that took it (0.7.4), into an env made with the same id and arguments"
        ) from None


def _pickle(state: dict[str, Any], resources: dict[str, Any]) -> bytes:
    names = {id(value): name for name, value in resources.items()}
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=5)
    pickler.persistent_id = lambda obj: names.get(id(obj))  # type: ignore[method-assign]
    pickler.dump(state)
    return buf.getvalue()


def _unpicklable(state: dict[str, Any], resources: dict[str, Any]) -> str:
    """Which attribute of ``state`` (or of the TextArena engine in it) does not pickle, in words."""
    engine = state.get("_ta")
    parts = [(f"TextArena's engine attribute {k!r}", v) for k, v in vars(engine).items()] if engine is not None else []
    parts += [(f"the adapter's attribute {k!r}", v) for k, v in state.items() if k != "_ta"]
    for what, value in parts:
        try:
            _pickle({"": value}, resources)
        except _PICKLE_ERRORS:
            return f"{what} (a {type(value).__name__})"
    return "one of its attributes"


def _holds(value: Any, cls: type, depth: int = 2) -> bool:
    """Whether ``value``, or what it holds ``depth`` levels down (items, attributes), is a ``cls``."""
    if isinstance(value, cls):
        return True
    if depth == 0 or isinstance(value, (str, bytes, type)):
        return False
    if isinstance(value, dict):
        items: Any = value.values()
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    elif hasattr(value, "__dict__"):
        items = vars(value).values()
    else:
        return False
    return any(_holds(v, cls, depth - 1) for v in items)
