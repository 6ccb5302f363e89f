"""ArCHer's offline data: a saved run's episode store, eval run or training run alike (the one episode
format, turngym.benchmarks.store), read as it was recorded: terminated and truncated turns kept apart.

    episodes = load_offline_episodes("runs/gn")     # or runs/gn/episodes.jsonl
"""

from __future__ import annotations

from pathlib import Path

from turngym.core.errors import ConfigError
from turngym.core.types import Episode

__all__ = ["load_offline_episodes", "offline_store"]


def offline_store(path: str | Path) -> Path:
    """The episode store of ``path``: a store file, or a run directory holding ``episodes.jsonl``."""
    from turngym.benchmarks.store import EPISODES_FILE

    p = Path(path)
    if p.is_dir() and (p / EPISODES_FILE).is_file():
        return p / EPISODES_FILE
    if p.is_file() and p.suffix == ".jsonl":
        return p
    hint = (
        " (a turn-table Parquet export is not a run's storage: point at the run directory it came from)"
        if p.suffix == ".parquet" or (p.is_dir() and any(p.glob("*.parquet")))
        else ""
    )
    raise ConfigError(
        f"algorithm.dataset={str(p)!r} is not an episode store{hint}: point it at a run directory (runs/NAME, "
        "a training or an eval run) or its episodes.jsonl"
    )


def load_offline_episodes(path: str | Path) -> list[Episode]:
    """The episodes of a run's store (see ``offline_store``)."""
    from turngym.benchmarks.store import read_episodes

    return read_episodes(offline_store(path))
