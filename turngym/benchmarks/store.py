"""The episode store of a run directory: an append-only JSONL file, one finished episode per line.

The one episode format of turngym: eval runs, training runs (every iteration's episodes, and the
trainer's held-out eval episodes) and the ArCHer replay buffer's checkpoints all keep full ``Episode``
records here; the turn table is read from it (``TurnTable.from_episodes(read_episodes(path))``).

A line leaves out the fields at their defaults (``None``s, empty lists, ``False``: a third of a
training episode's bytes); reading fills them in, so a record reads back equal.

Each line is written, flushed and fsynced as its episode finishes (``append``), or a batch of lines
with one fsync (``extend``), so a run killed at any moment (``kill -9`` included) loses at most the
episodes in flight. A line torn by a kill mid-write has no final newline: reading ignores it and
opening for append cuts it off, so it is never duplicated nor glued to the next line.

Within a store an episode is identified by (``run_id``, ``episode_id``): an eval run's run_id is its
directory name; a training run's episodes carry their iteration in it (``it12``: iteration 12's
rollout, ``eval12``: the held-out eval after iteration 12), which ``drop_after`` uses on resume.

    with EpisodeStore(path=run_dir / "episodes.jsonl") as store:
        done = {e.episode_id for e in store.load()}
        store.append(episode)
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from turngym.core.types import Episode

EPISODES_FILE = "episodes.jsonl"


class EpisodeStore:
    """Appends episodes to one JSONL file. ``close()`` is safe twice."""

    def __init__(self, *, path: str | Path, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._file: IO[bytes] | None = None

    def load(self) -> list[Episode]:
        """The episodes stored so far (first copy of each id); a torn last line is left out."""
        return read_episodes(self.path)

    def append(self, episode: Episode) -> None:
        self.extend((episode,))

    def extend(self, episodes: Iterable[Episode]) -> int:
        """Append ``episodes`` (one write, one fsync); returns how many."""
        data = b"".join(e.model_dump_json(fallback=_jsonable, exclude_defaults=True).encode() + b"\n" for e in episodes)
        if not data:
            return 0
        f = self._file if self._file is not None else self._open()
        f.write(data)
        f.flush()
        if self.fsync:
            os.fsync(f.fileno())
        return data.count(b"\n")

    def close(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            f.close()

    def __enter__(self) -> EpisodeStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _open(self) -> IO[bytes]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _cut_torn_tail(self.path)
        self._file = open(self.path, "ab")  # noqa: SIM115 - held open for the store's lifetime
        return self._file


def read_episodes(path: str | Path, *, run_ids: Iterable[str] | None = None) -> list[Episode]:
    """The episodes of a JSONL store, without its torn last line; a (run_id, episode_id) stored twice keeps
    its first copy. ``run_ids``: only the episodes of these runs (``["it3"]``: iteration 3 of a training run)."""
    p = Path(path)
    if not p.exists():
        return []
    data = p.read_bytes()
    lines = data.split(b"\n")
    lines.pop()  # the text after the last newline: empty, or a line torn mid-write
    out: list[Episode] = []
    seen: set[tuple[str, str]] = set()
    wanted = None if run_ids is None else {r.encode() for r in run_ids}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if wanted is not None and _run_id(line) not in wanted:
            continue
        try:
            ep = Episode.model_validate_json(line)
        except ValidationError as e:
            warnings.warn(f"{p}:{n} is not an episode record ({e.error_count()} errors); skipped", stacklevel=2)
            continue
        key = (ep.run_id, ep.episode_id)
        if key not in seen:
            seen.add(key)
            out.append(ep)
    return out


#: a training run's run_id: the rollout of iteration k (``it12``) or the held-out eval after it (``eval12``)
_ITERATION_RUN_ID = re.compile(rb"(?:it|eval)(\d+)")
_RUN_ID_FIELD = re.compile(rb'^\{"run_id":"((?:[^"\\]|\\.)*)"')


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The JSON objects of an append-only JSONL file (a run's metrics.jsonl), one per line; a line cut by a
    kill mid-write is left out. A missing file holds none."""
    p = Path(path)
    if not p.is_file():
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def iteration_of(run_id: str) -> int | None:
    """k of a training run's run_id ``it{k}`` / ``eval{k}``; None for any other run_id."""
    m = _ITERATION_RUN_ID.fullmatch(run_id.encode())
    return int(m.group(1)) if m else None


def drop_after(path: str | Path, iteration: int, *, evaluated: Iterable[int] | None = None) -> int:
    """Remove the episodes of iterations after ``iteration`` (run_id ``it{k}`` / ``eval{k}``, k > iteration),
    those of the evals not in ``evaluated`` (an eval killed before its record was logged) and a torn last
    line from a training run's store, atomically; returns how many were removed. What a resumed run plays
    again is so stored once."""
    done_evals = None if evaluated is None else set(evaluated)
    p = Path(path)
    if not p.exists():
        return 0
    lines = p.read_bytes().split(b"\n")
    torn = lines.pop() != b""
    keep = []
    for line in lines:
        run_id = _run_id(line)
        m = _ITERATION_RUN_ID.fullmatch(run_id)
        if m is None:
            keep.append(line)
            continue
        k = int(m.group(1))
        if k <= iteration and (done_evals is None or not run_id.startswith(b"eval") or k in done_evals):
            keep.append(line)
    dropped = len(lines) - len(keep)
    if dropped or torn:
        tmp = p.with_name(p.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(b"".join(line + b"\n" for line in keep))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(p)
    return dropped


def _run_id(line: bytes) -> bytes:
    """The run_id of a stored line (the first field ``model_dump_json`` writes), without parsing the line."""
    m = _RUN_ID_FIELD.match(line)
    if m is not None:
        return m.group(1)
    try:
        import json

        return str(json.loads(line).get("run_id", "")).encode()
    except (ValueError, AttributeError):
        return b""


def _cut_torn_tail(path: Path) -> None:
    """Truncate ``path`` after its last newline (drops a line torn by a kill mid-write)."""
    if not path.exists():
        return
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        block = 1 << 16
        end = size
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                f.truncate(start + i + 1)
                return
            end = start
        f.truncate(0)


def _jsonable(value: Any) -> Any:
    """JSON fallback for values pydantic cannot serialise (numpy scalars and arrays, sets, objects)."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    return str(value)
