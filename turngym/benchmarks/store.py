"""The episode store of a run directory: an append-only JSONL file, one finished episode per line.

Each line is written, flushed and fsynced as its episode finishes, so a run killed at any moment
(``kill -9`` included) loses at most the episodes in flight. A line torn by a kill mid-write has no
final newline: reading ignores it and opening for append cuts it off, so it is never duplicated
nor glued to the next line.

    with EpisodeStore(path=run_dir / "episodes.jsonl") as store:
        done = {e.episode_id for e in store.load()}
        store.append(episode)
"""

from __future__ import annotations

import os
import warnings
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
        f = self._file if self._file is not None else self._open()
        f.write(episode.model_dump_json(fallback=_jsonable).encode() + b"\n")
        f.flush()
        if self.fsync:
            os.fsync(f.fileno())

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


def read_episodes(path: str | Path) -> list[Episode]:
    """The episodes of a JSONL store, without its torn last line; duplicate ids keep the first copy."""
    p = Path(path)
    if not p.exists():
        return []
    data = p.read_bytes()
    lines = data.split(b"\n")
    lines.pop()  # the text after the last newline: empty, or a line torn mid-write
    out: list[Episode] = []
    seen: set[str] = set()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            ep = Episode.model_validate_json(line)
        except ValidationError as e:
            warnings.warn(f"{p}:{n} is not an episode record ({e.error_count()} errors); skipped", stacklevel=2)
            continue
        if ep.episode_id not in seen:
            seen.add(ep.episode_id)
            out.append(ep)
    return out


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
