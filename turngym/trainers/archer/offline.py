"""ArCHer's offline data: a saved run's episodes (an eval run's episode store, or a training run's turn
table), rebuilt as Episodes for the replay buffer.

    episodes = load_offline_episodes("runs/gn/episodes")     # or runs/NAME/episodes.jsonl
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from turngym.core.errors import ConfigError
from turngym.core.types import Episode, Message, Turn
from turngym.trainers.table import TurnTable, read_parquet

__all__ = ["load_offline_episodes", "table_episodes"]


def table_episodes(table: TurnTable) -> list[Episode]:
    """Episodes rebuilt from a turn table, enough for the replay buffer: the exact token streams and spans,
    rewards and action texts; the history as text messages (each turn's observation text as one user
    message). The table keeps no truncation flag, so every episode's last turn counts as terminal."""
    out = []
    for e in range(len(table)):
        view = table.episode(e)
        rows = list(view.turn_rows)
        if not rows:
            continue
        turns = []
        for i, m in enumerate(rows):
            nxt = rows[i + 1] if i + 1 < len(rows) else None
            span = (int(table.action_start[m]), int(table.action_end[m]))
            obs = (int(table.obs_start[m]), int(table.obs_end[m]))
            turns.append(
                Turn(
                    index=i,
                    action=str(table.action_text[m]),
                    observation=[Message(role="user", content=str(table.state_text[nxt]))] if nxt is not None else [],
                    reward=float(table.reward[m]),
                    terminated=nxt is None,
                    action_span=span if span[0] >= 0 else None,
                    observation_span=obs if obs[0] >= 0 else None,
                )
            )
        success = table.success[e]
        out.append(
            Episode(
                run_id=str(table.run_id[e]),
                episode_id=str(table.episode_id[e]),
                group_id=str(table.group_id[e]),
                env_id=str(table.env_id[e]),
                task_id=str(table.task_id[e]),
                instance_hash=str(table.instance_hash[e]),
                prompt=[Message(role="user", content=str(table.state_text[rows[0]]))],
                turns=turns,
                tokens=[int(x) for x in view.tokens],
                mask=[int(x) for x in view.mask],
                logprobs=[float(x) for x in view.logprobs],
                trainable=bool(table.trainable[e]),
                success=None if np.isnan(success) else bool(success),
            )
        )
    return out


def load_offline_episodes(path: str | Path) -> list[Episode]:
    """A saved run's episodes: an episode store JSONL (or a directory holding ``episodes.jsonl``), else a
    turn-table parquet file or directory (``runs/NAME/episodes``)."""
    from turngym.benchmarks.store import EPISODES_FILE, read_episodes

    p = Path(path)
    if p.suffix == ".jsonl" or (p.is_dir() and (p / EPISODES_FILE).is_file()):
        return read_episodes(p / EPISODES_FILE if p.is_dir() else p)
    if p.suffix == ".parquet" or (p.is_dir() and any(p.glob("*.parquet"))):
        return table_episodes(read_parquet(p))
    raise ConfigError(
        f"algorithm.dataset={str(p)!r} is neither an episode store JSONL nor a turn-table parquet file or directory: "
        "point it at runs/NAME/episodes (a training run) or runs/NAME/episodes.jsonl (an eval run)"
    )
