"""The turn table: the episode buffer trainers and reports read (DESIGN.md, Turn table).

Columnar and flat, three levels of rows, each a set of numpy columns:

    episodes (E)  ids, outcome, success, trainable, token_offsets (E+1), turn_offsets (E+1), and the
                  tree of a tree rollout: parent_id ("" for a root), branch_turn (-1 for a root; a branch
                  copies its parent's first branch_turn turns, with mask 0 on their tokens), policy_version
                  (the policy that sampled it, -1 unknown: what overlapping rollouts make stale)
    turns    (M)  reward r_t, action / observation spans, state_text (what the agent saw before
                  acting), action_text, invalid, terminated / truncated (the env's flags of the step:
                  an episode that ended on a time limit is truncated, not terminal); the turns of
                  episode e are rows turn_offsets[e]:turn_offsets[e+1]
    tokens   (N)  tokens, mask (1 = sampled by the policy), logprobs; the stream of episode e is
                  tokens[token_offsets[e]:token_offsets[e+1]]

Spans are [start, end) offsets into the episode's own stream (-1 when the agent recorded none).
Views slice the flat arrays, so they never copy the stream per turn::

    table = TurnTable.from_episodes(read_episodes("runs/x/episodes.jsonl"))   # the run's episode store
    view = table.turn(3)                                 # view.context = stream[:action_start]
    batch = collate_episodes(table, device="cuda", token_columns={"advantages": adv.token})
    write_parquet(table, "export/x.parquet")             # an export; the run keeps its episode store

Grouping is explicit: ``table.group_index("group_id" | "instance_hash" | "task_id")`` gives every
episode a dense group number, and every estimator names the key it groups by.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from turngym.core.types import Episode, Message

if TYPE_CHECKING:
    import pyarrow as pa
    import torch

__all__ = [
    "EpisodeView",
    "GroupKey",
    "OutcomeSource",
    "TurnTable",
    "TurnView",
    "collate_episodes",
    "collate_turns",
    "read_parquet",
    "uncollate",
    "write_parquet",
]

#: the episode column that says which episodes form one group
GroupKey = Literal["group_id", "instance_hash", "task_id"]
#: where the outcome o_i comes from: the reward of the last turn (the env's final verifiable
#: reward), ``Episode.success`` as 1.0/0.0, or the return R_i = sum_t r_t
OutcomeSource = Literal["final_reward", "success", "return"]

_EPISODE_STR = ("episode_id", "group_id", "task_id", "instance_hash", "env_id", "run_id", "parent_id")
_EPISODE_NUM = ("outcome", "success", "trainable", "branch_turn", "policy_version")
_TURN_SPANS = ("action_start", "action_end", "obs_start", "obs_end")
_TURN_FLAGS = ("invalid", "terminated", "truncated")


@dataclass(frozen=True)
class EpisodeView:
    """Episode ``row``: its stream (views into the table) and its turn rows."""

    row: int
    tokens: np.ndarray
    mask: np.ndarray
    logprobs: np.ndarray
    turn_rows: range


@dataclass(frozen=True)
class TurnView:
    """Turn row ``row`` (turn ``index`` of episode ``episode``): the context s_t (the stream up to the
    action) and the action a_t (the turn's span), all views into the table's flat arrays."""

    row: int
    episode: int
    index: int
    context: np.ndarray
    action: np.ndarray
    action_mask: np.ndarray
    action_logprobs: np.ndarray
    reward: float
    state_text: str


@dataclass(frozen=True, eq=False)
class TurnTable:
    """Episodes, turns and tokens as flat numpy columns. Build with ``from_episodes`` or
    ``read_parquet``; see the module docstring for the layout."""

    # per episode (E)
    episode_id: np.ndarray
    group_id: np.ndarray
    task_id: np.ndarray
    instance_hash: np.ndarray
    env_id: np.ndarray
    run_id: np.ndarray
    parent_id: np.ndarray  # str: the episode a branch continues ("" for a root)
    outcome: np.ndarray  # o_i, float64
    success: np.ndarray  # 1.0 / 0.0 / nan (unknown), float64
    trainable: np.ndarray  # bool
    branch_turn: np.ndarray  # int64: the turn a branch continues its parent from, -1 for a root
    policy_version: np.ndarray  # int64: the version of the policy that sampled it, -1 unknown
    token_offsets: np.ndarray  # int64 (E+1)
    turn_offsets: np.ndarray  # int64 (E+1)
    # per turn (M)
    reward: np.ndarray  # r_t, float64
    action_start: np.ndarray  # int64, relative to the episode's stream, -1 = none
    action_end: np.ndarray
    obs_start: np.ndarray
    obs_end: np.ndarray
    state_text: np.ndarray  # object (str): the observation the agent answered at this turn
    action_text: np.ndarray  # object (str)
    invalid: np.ndarray  # bool: the action did not parse
    terminated: np.ndarray  # bool: the env's terminated flag of this step (a terminal state)
    truncated: np.ndarray  # bool: the env's truncated flag of this step (a time limit: bootstrap)
    # per token (N)
    tokens: np.ndarray  # int64
    mask: np.ndarray  # int8
    logprobs: np.ndarray  # float32

    def __post_init__(self) -> None:
        _validate(self)

    # ---- sizes and derived columns -------------------------------------------------------
    def __len__(self) -> int:
        return len(self.episode_id)

    @property
    def num_turn_rows(self) -> int:
        return len(self.reward)

    @cached_property
    def num_turns(self) -> np.ndarray:
        """T_i per episode."""
        return np.diff(self.turn_offsets)

    @cached_property
    def stream_lengths(self) -> np.ndarray:
        return np.diff(self.token_offsets)

    @cached_property
    def turn_episode(self) -> np.ndarray:
        """The episode row of every turn row."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.num_turns)

    @cached_property
    def turn_index(self) -> np.ndarray:
        """t (0-based) of every turn row inside its episode."""
        return np.arange(self.num_turn_rows, dtype=np.int64) - self.turn_offsets[self.turn_episode]

    @cached_property
    def is_last_turn(self) -> np.ndarray:
        return self.turn_index == self.num_turns[self.turn_episode] - 1

    @cached_property
    def returns(self) -> np.ndarray:
        """R_i = sum_t r_t per episode."""
        return np.bincount(self.turn_episode, weights=self.reward, minlength=len(self)).astype(np.float64)

    @cached_property
    def token_turn(self) -> np.ndarray:
        """The turn row of every token that carries loss (mask 1 inside an action span); -1 elsewhere."""
        out = np.full(len(self.tokens), -1, dtype=np.int64)
        has = self.action_start >= 0
        base = self.token_offsets[self.turn_episode]
        for m in np.flatnonzero(has):
            out[base[m] + self.action_start[m] : base[m] + self.action_end[m]] = m
        out[self.mask == 0] = -1
        return out

    @cached_property
    def token_turn_index(self) -> np.ndarray:
        """t of the turn of every loss token; -1 elsewhere."""
        tt = self.token_turn
        return np.where(tt >= 0, self.turn_index[np.maximum(tt, 0)] if self.num_turn_rows else -1, -1)

    @property
    def has_tokens(self) -> bool:
        return len(self.tokens) > 0

    # ---- grouping ------------------------------------------------------------------------
    def group_index(self, key: GroupKey = "group_id") -> np.ndarray:
        """A dense group number (0..n_groups-1, in order of first appearance) for every episode."""
        if key not in ("group_id", "instance_hash", "task_id"):
            raise ValueError(f"unknown group key {key!r}: use 'group_id', 'instance_hash' or 'task_id'")
        column = getattr(self, key)
        empty = np.flatnonzero(column == "")
        if len(empty):
            raise ValueError(
                f"episode {self.episode_id[empty[0]]!r} has an empty {key}, so it belongs to no group: "
                f"record groups with turngym.agents.runner.group_tasks, or group by another key "
                f"(group_key='instance_hash')"
            )
        return _dense_ids(column)

    def check_groups(self, key: GroupKey = "group_id") -> None:
        """Raise when a group mixes task instances (different ``instance_hash``): its episodes did not
        see the same task, so a group baseline would compare unlike things (a seed silently ignored)."""
        groups = self.group_index(key)
        for g in np.unique(groups):
            hashes = set(self.instance_hash[groups == g].tolist())
            if len(hashes) > 1:
                first = self.group_id[np.flatnonzero(groups == g)[0]]
                raise ValueError(
                    f"group {first!r} mixes task instances {sorted(hashes)}: its episodes did not share "
                    "one (env, seed); make sure the env honours reset(seed=...) and that the runner gives "
                    "a group one seed"
                )

    # ---- views ---------------------------------------------------------------------------
    def episode(self, row: int) -> EpisodeView:
        a, b = self.token_offsets[row], self.token_offsets[row + 1]
        return EpisodeView(
            row=row,
            tokens=self.tokens[a:b],
            mask=self.mask[a:b],
            logprobs=self.logprobs[a:b],
            turn_rows=range(int(self.turn_offsets[row]), int(self.turn_offsets[row + 1])),
        )

    def turn(self, row: int) -> TurnView:
        e = int(self.turn_episode[row])
        base = int(self.token_offsets[e])
        s, t = int(self.action_start[row]), int(self.action_end[row])
        if s < 0:
            raise ValueError(
                f"turn {int(self.turn_index[row])} of episode {self.episode_id[e]!r} has no action span: "
                "the agent recorded no token stream (a scripted or chat-API agent); train on episodes "
                "with trainable=True"
            )
        return TurnView(
            row=row,
            episode=e,
            index=int(self.turn_index[row]),
            context=self.tokens[base : base + s],
            action=self.tokens[base + s : base + t],
            action_mask=self.mask[base + s : base + t],
            action_logprobs=self.logprobs[base + s : base + t],
            reward=float(self.reward[row]),
            state_text=str(self.state_text[row]),
        )

    def turn_rows_of(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The turn rows of the episodes ``rows``, in order."""
        return _gather_ranges(self.turn_offsets, np.asarray(rows, dtype=np.int64))[0]

    def token_positions_of(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The flat-stream positions of the tokens of the episodes ``rows``, in order."""
        return _gather_ranges(self.token_offsets, np.asarray(rows, dtype=np.int64))[0]

    def select(self, rows: Sequence[int] | np.ndarray) -> TurnTable:
        """A new table of the episodes ``rows`` (in that order), their turns and tokens."""
        rows = np.asarray(rows, dtype=np.int64)
        turn_idx, turn_off = _gather_ranges(self.turn_offsets, rows)
        tok_idx, tok_off = _gather_ranges(self.token_offsets, rows)
        cols: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "token_offsets":
                cols[f.name] = tok_off
            elif f.name == "turn_offsets":
                cols[f.name] = turn_off
            elif f.name in _EPISODE_COLUMNS:
                cols[f.name] = v[rows]
            elif f.name in _TURN_COLUMNS:
                cols[f.name] = v[turn_idx]
            else:
                cols[f.name] = v[tok_idx]
        return TurnTable(**cols)

    # ---- construction --------------------------------------------------------------------
    @classmethod
    def from_episodes(cls, episodes: Sequence[Episode], *, outcome: OutcomeSource = "final_reward") -> TurnTable:
        """The table of ``episodes``. ``outcome`` says where o_i comes from (see ``OutcomeSource``)."""
        if outcome not in ("final_reward", "success", "return"):
            raise ValueError(f"unknown outcome source {outcome!r}: use 'final_reward', 'success' or 'return'")
        ep_cols: dict[str, list[Any]] = {k: [] for k in (*_EPISODE_STR, *_EPISODE_NUM)}
        turn_cols: dict[str, list[Any]] = {k: [] for k in ("reward", *_TURN_SPANS, "state_text", "action_text", *_TURN_FLAGS)}
        tokens: list[int] = []
        mask: list[int] = []
        logprobs: list[float] = []
        tok_off, turn_off = [0], [0]
        for ep in episodes:
            _check_stream(ep)
            for k in _EPISODE_STR:
                ep_cols[k].append(getattr(ep, k))
            ep_cols["outcome"].append(_outcome(ep, outcome))
            ep_cols["success"].append(np.nan if ep.success is None else float(ep.success))
            ep_cols["trainable"].append(bool(ep.trainable))
            ep_cols["branch_turn"].append(-1 if ep.branch_turn is None else int(ep.branch_turn))
            ep_cols["policy_version"].append(-1 if ep.policy_version is None else int(ep.policy_version))
            state = _messages_text(ep.prompt)
            for turn in ep.turns:
                turn_cols["reward"].append(float(turn.reward))
                a = turn.action_span or (-1, -1)
                o = turn.observation_span or (-1, -1)
                for k, v in zip(_TURN_SPANS, (*a, *o), strict=True):
                    turn_cols[k].append(v)
                turn_cols["state_text"].append(state)
                turn_cols["action_text"].append(turn.action)
                turn_cols["invalid"].append(turn.action_error is not None)
                turn_cols["terminated"].append(bool(turn.terminated))
                turn_cols["truncated"].append(bool(turn.truncated))
                state = _messages_text(turn.observation)
            tokens.extend(ep.tokens)
            mask.extend(ep.mask)
            logprobs.extend(ep.logprobs if ep.logprobs else [0.0] * len(ep.tokens))
            tok_off.append(len(tokens))
            turn_off.append(turn_off[-1] + len(ep.turns))
        return cls(
            **{k: _str_array(ep_cols[k]) for k in _EPISODE_STR},
            outcome=np.asarray(ep_cols["outcome"], dtype=np.float64),
            success=np.asarray(ep_cols["success"], dtype=np.float64),
            trainable=np.asarray(ep_cols["trainable"], dtype=bool),
            branch_turn=np.asarray(ep_cols["branch_turn"], dtype=np.int64),
            policy_version=np.asarray(ep_cols["policy_version"], dtype=np.int64),
            token_offsets=np.asarray(tok_off, dtype=np.int64),
            turn_offsets=np.asarray(turn_off, dtype=np.int64),
            reward=np.asarray(turn_cols["reward"], dtype=np.float64),
            **{k: np.asarray(turn_cols[k], dtype=np.int64) for k in _TURN_SPANS},
            state_text=_str_array(turn_cols["state_text"]),
            action_text=_str_array(turn_cols["action_text"]),
            **{k: np.asarray(turn_cols[k], dtype=bool) for k in _TURN_FLAGS},
            tokens=np.asarray(tokens, dtype=np.int64),
            mask=np.asarray(mask, dtype=np.int8),
            logprobs=np.asarray(logprobs, dtype=np.float32),
        )

    # ---- Arrow / Parquet: one row per episode, the turn and token columns as lists ---------
    def to_arrow(self) -> pa.Table:
        import pyarrow as pa

        def lists(values: np.ndarray, offsets: np.ndarray, type_: pa.DataType) -> pa.ListArray:
            return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values, type=type_))

        t, k = self.turn_offsets, self.token_offsets
        columns = {name: pa.array(getattr(self, name).tolist(), type=pa.string()) for name in _EPISODE_STR}
        columns |= {
            "outcome": pa.array(self.outcome, type=pa.float64()),
            "success": pa.array(self.success, type=pa.float64()),
            "trainable": pa.array(self.trainable, type=pa.bool_()),
            "branch_turn": pa.array(self.branch_turn, type=pa.int64()),
            "policy_version": pa.array(self.policy_version, type=pa.int64()),
            "reward": lists(self.reward, t, pa.float64()),
            **{name: lists(getattr(self, name), t, pa.int64()) for name in _TURN_SPANS},
            "state_text": lists(self.state_text.tolist(), t, pa.string()),
            "action_text": lists(self.action_text.tolist(), t, pa.string()),
            **{name: lists(getattr(self, name), t, pa.bool_()) for name in _TURN_FLAGS},
            "tokens": lists(self.tokens, k, pa.int64()),
            "mask": lists(self.mask, k, pa.int8()),
            "logprobs": lists(self.logprobs, k, pa.float32()),
        }
        return pa.table(columns)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> TurnTable:
        missing = [c for c in _ARROW_COLUMNS if c not in table.column_names and c not in _LATER_COLUMNS]
        if missing:
            raise ValueError(
                f"the Arrow table lacks the turn-table columns {missing}: it was not written by "
                "turngym.trainers.table.write_parquet"
            )
        if table.num_rows == 0:
            return cls.from_episodes([])
        table = table.combine_chunks()

        def flat(name: str, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
            col = table.column(name).chunk(0)
            offsets = np.asarray(col.offsets, dtype=np.int64)
            values = col.flatten().to_numpy(zero_copy_only=False)
            return values.astype(dtype, copy=False), offsets - offsets[0]

        def episode_col(name: str, dtype: Any) -> np.ndarray:
            return table.column(name).to_numpy(zero_copy_only=False).astype(dtype, copy=False)

        reward, turn_off = flat("reward", np.float64)
        tokens, tok_off = flat("tokens", np.int64)
        flags = {k: flat(k, bool)[0] for k in _TURN_FLAGS if k in table.column_names}
        if "terminated" not in flags:  # a shard written before the flags were kept: the last turn ends it
            flags["terminated"] = np.zeros(len(reward), dtype=bool)
            flags["terminated"][turn_off[1:][np.diff(turn_off) > 0] - 1] = True
        flags.setdefault("truncated", np.zeros(len(reward), dtype=bool))
        n = table.num_rows
        return cls(
            **{
                k: _str_array(table.column(k).to_pylist() if k in table.column_names else [""] * n)
                for k in _EPISODE_STR
            },
            outcome=episode_col("outcome", np.float64),
            success=episode_col("success", np.float64),
            trainable=episode_col("trainable", bool),
            **{
                k: episode_col(k, np.int64) if k in table.column_names else np.full(n, -1, dtype=np.int64)
                for k in ("branch_turn", "policy_version")
            },
            token_offsets=tok_off,
            turn_offsets=turn_off,
            reward=reward,
            **{k: flat(k, np.int64)[0] for k in _TURN_SPANS},
            state_text=_str_array(flat("state_text", object)[0].tolist()),
            action_text=_str_array(flat("action_text", object)[0].tolist()),
            **flags,
            tokens=tokens,
            mask=flat("mask", np.int8)[0],
            logprobs=flat("logprobs", np.float32)[0],
        )

    @classmethod
    def concat(cls, tables: Sequence[TurnTable]) -> TurnTable:
        """One table of the episodes of ``tables``, in order."""
        if not tables:
            return cls.from_episodes([])
        cols: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            parts = [getattr(t, f.name) for t in tables]
            if f.name in ("token_offsets", "turn_offsets"):
                shifted, base = [parts[0]], parts[0][-1]
                for p in parts[1:]:
                    shifted.append(p[1:] + base)
                    base += p[-1]
                cols[f.name] = np.concatenate(shifted)
            else:
                cols[f.name] = np.concatenate(parts)
        return cls(**cols)


_EPISODE_COLUMNS = frozenset((*_EPISODE_STR, *_EPISODE_NUM))
_TURN_COLUMNS = frozenset(("reward", *_TURN_SPANS, "state_text", "action_text", *_TURN_FLAGS))
_ARROW_COLUMNS = (*_EPISODE_COLUMNS, *_TURN_COLUMNS, "tokens", "mask", "logprobs")
#: columns that shards of earlier versions lack (read with the defaults those versions assumed)
_LATER_COLUMNS = frozenset(("terminated", "truncated", "parent_id", "branch_turn", "policy_version"))


def write_parquet(table: TurnTable | Sequence[Episode], path: str | Path) -> Path:
    """Export a table as one Parquet shard (one row per episode), written whole, then renamed into place.
    A run's storage is its episode store (turngym.benchmarks.store), not Parquet."""
    import pyarrow.parquet as pq

    if not isinstance(table, TurnTable):
        table = TurnTable.from_episodes(table)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table.to_arrow(), tmp)
    tmp.replace(path)
    return path


def read_parquet(path: str | Path | Sequence[str | Path]) -> TurnTable:
    """Read one shard, a list of shards, or every ``*.parquet`` in a directory (sorted by name)."""
    import pyarrow.parquet as pq

    if isinstance(path, (str, Path)):
        p = Path(path)
        if p.is_dir():
            paths = sorted(p.glob("*.parquet"))
        elif p.exists():
            paths = [p]
        else:
            raise FileNotFoundError(f"no turn-table shard or directory at {str(p)!r}: check the run directory")
    else:
        paths = [Path(x) for x in path]
    return TurnTable.concat([TurnTable.from_arrow(pq.read_table(p)) for p in paths])


# ---- collation ----------------------------------------------------------------------------
def collate_episodes(
    table: TurnTable,
    rows: Sequence[int] | np.ndarray | None = None,
    *,
    device: torch.device | str | None = None,
    pad_id: int = 0,
    token_columns: Mapping[str, np.ndarray] | None = None,
) -> dict[str, torch.Tensor]:
    """The episode view of ``rows`` (default: all) as right-padded tensors on ``device``.

    Keys: ``input_ids`` [B, L] (``pad_id`` after the end), ``attention_mask`` [B, L] (1 on real tokens),
    ``loss_mask`` [B, L] bool (mask 1 inside an action span), ``old_logprobs`` [B, L] float32,
    ``turn_ids`` [B, L] (turn index t on loss tokens, -1 elsewhere), ``episode`` [B] (table rows),
    ``lengths`` [B], plus one [B, L] float32 tensor per entry of ``token_columns`` (per-token arrays
    over the table's flat stream, such as ``Advantages.token``), padded with 0.
    """
    rows = np.arange(len(table)) if rows is None else np.asarray(rows, dtype=np.int64)
    starts, lengths = table.token_offsets[rows], table.stream_lengths[rows]
    idx, valid = _padded_index(starts, lengths)
    cols = {
        "input_ids": _pad(table.tokens, idx, valid, pad_id),
        "attention_mask": valid.astype(np.int64),
        "loss_mask": _pad(table.token_turn >= 0, idx, valid, False),
        "old_logprobs": _pad(table.logprobs, idx, valid, 0.0),
        "turn_ids": _pad(table.token_turn_index, idx, valid, -1),
    }
    for name, values in (token_columns or {}).items():
        cols[name] = _pad(_check_token_column(table, name, values), idx, valid, 0.0)
    return _to_torch(cols, rows, lengths, device)


def collate_turns(
    table: TurnTable,
    turn_rows: Sequence[int] | np.ndarray | None = None,
    *,
    device: torch.device | str | None = None,
    pad_id: int = 0,
    token_columns: Mapping[str, np.ndarray] | None = None,
) -> dict[str, torch.Tensor]:
    """The turn view of ``turn_rows`` (default: all): one row per turn holding its context and its
    action (the stream of its episode up to the action's end), loss only on that action's tokens.

    Same keys as ``collate_episodes``; ``episode`` [B] is the episode row of each turn and
    ``turn_rows`` [B] the turn rows, so the per-turn loss aggregation can still group by episode.
    """
    turn_rows = np.arange(table.num_turn_rows) if turn_rows is None else np.asarray(turn_rows, dtype=np.int64)
    if np.any(table.action_start[turn_rows] < 0):
        raise ValueError(
            "collate_turns needs action spans, and some turns have none: the agent recorded no token "
            "stream; train on episodes with trainable=True"
        )
    episodes = table.turn_episode[turn_rows]
    starts = table.token_offsets[episodes]
    lengths = table.action_end[turn_rows]
    idx, valid = _padded_index(starts, lengths)
    pos = np.arange(idx.shape[1])[None, :]
    in_action = valid & (pos >= table.action_start[turn_rows][:, None])
    loss = in_action & _pad(table.mask.astype(bool), idx, valid, False)
    cols = {
        "input_ids": _pad(table.tokens, idx, valid, pad_id),
        "attention_mask": valid.astype(np.int64),
        "loss_mask": loss,
        "old_logprobs": _pad(table.logprobs, idx, valid, 0.0),
        "turn_ids": np.where(loss, table.turn_index[turn_rows][:, None], -1),
    }
    for name, values in (token_columns or {}).items():
        cols[name] = _pad(_check_token_column(table, name, values), idx, valid, 0.0)
    out = _to_torch(cols, episodes, lengths, device)
    import torch

    out["turn_rows"] = torch.as_tensor(turn_rows, device=out["input_ids"].device)
    return out


def uncollate(table: TurnTable, rows: Sequence[int] | np.ndarray | None, padded: Any) -> np.ndarray:
    """The inverse of ``collate_episodes`` for one [B, L] tensor (such as critic values): a per-token
    array over the table's flat stream, 0 on the tokens of episodes not in ``rows``."""
    rows = np.arange(len(table)) if rows is None else np.asarray(rows, dtype=np.int64)
    arr = padded.detach().float().cpu().numpy() if hasattr(padded, "detach") else np.asarray(padded)
    lengths = table.stream_lengths[rows]
    if arr.shape[0] != len(rows) or (len(rows) and arr.shape[1] < lengths.max(initial=0)):
        raise ValueError(
            f"padded values of shape {arr.shape} do not fit {len(rows)} episodes of up to "
            f"{lengths.max(initial=0)} tokens: pass the rows the batch was collated from"
        )
    out = np.zeros(len(table.tokens), dtype=np.float64)
    idx, valid = _padded_index(table.token_offsets[rows], lengths)
    out[idx[valid]] = arr[:, : idx.shape[1]][valid]
    return out


# ---- helpers ------------------------------------------------------------------------------
def _validate(t: TurnTable) -> None:
    e, m, n = len(t.episode_id), len(t.reward), len(t.tokens)
    sizes = {f.name: len(getattr(t, f.name)) for f in dataclasses.fields(t)}
    want = {
        **{k: e for k in _EPISODE_COLUMNS},
        **{k: m for k in _TURN_COLUMNS},
        "token_offsets": e + 1,
        "turn_offsets": e + 1,
        "mask": n,
        "logprobs": n,
    }
    bad = {k: (sizes[k], v) for k, v in want.items() if sizes[k] != v}
    if bad:
        raise ValueError(f"turn-table columns of wrong length (got, want): {bad}")
    if t.turn_offsets[-1] != m or t.token_offsets[-1] != n:
        raise ValueError(
            f"offsets end at {int(t.turn_offsets[-1])} turns / {int(t.token_offsets[-1])} tokens, "
            f"but the table has {m} turns / {n} tokens"
        )


def _check_stream(ep: Episode) -> None:
    n = len(ep.tokens)
    if len(ep.mask) != n or (ep.logprobs and len(ep.logprobs) != n):
        raise ValueError(
            f"episode {ep.episode_id!r}: tokens ({n}), mask ({len(ep.mask)}) and logprobs "
            f"({len(ep.logprobs)}) differ in length: the agent's conversation recorded a broken stream"
        )
    for turn in ep.turns:
        for name in ("action_span", "observation_span"):
            span = getattr(turn, name)
            if span is not None and not (0 <= span[0] <= span[1] <= n):
                raise ValueError(
                    f"episode {ep.episode_id!r} turn {turn.index}: {name} {span} is outside its stream of "
                    f"{n} tokens"
                )


def _outcome(ep: Episode, source: OutcomeSource) -> float:
    if source == "return":
        return float(ep.total_return)
    if source == "success":
        if ep.success is None:
            raise ValueError(
                f"episode {ep.episode_id!r} of {ep.env_id} has success=None: this env sets no success flag, "
                "so build the table with outcome='final_reward' or 'return'"
            )
        return float(ep.success)
    return float(ep.turns[-1].reward) if ep.turns else 0.0


def _messages_text(messages: Sequence[Message]) -> str:
    return "\n".join(m.text for m in messages)


def _str_array(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = ["" if v is None else str(v) for v in values]
    return out


def _dense_ids(values: np.ndarray) -> np.ndarray:
    """Dense ids in order of first appearance."""
    seen: dict[Any, int] = {}
    return np.fromiter((seen.setdefault(v, len(seen)) for v in values.tolist()), dtype=np.int64, count=len(values))


def _gather_ranges(offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the concatenated ranges offsets[r]:offsets[r+1] for r in rows, and their new offsets."""
    lengths = offsets[rows + 1] - offsets[rows]
    new_off = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    idx = np.repeat(offsets[rows] - new_off[:-1], lengths) + np.arange(new_off[-1], dtype=np.int64)
    return idx, new_off


def _padded_index(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = int(lengths.max(initial=0))
    pos = np.arange(width, dtype=np.int64)[None, :]
    valid = pos < lengths[:, None]
    return np.where(valid, starts[:, None] + pos, 0), valid


def _pad(values: np.ndarray, idx: np.ndarray, valid: np.ndarray, fill: Any) -> np.ndarray:
    if len(values) == 0:
        return np.full(idx.shape, fill, dtype=values.dtype)
    return np.where(valid, values[idx], fill)


def _check_token_column(table: TurnTable, name: str, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != (len(table.tokens),):
        raise ValueError(
            f"token column {name!r} has shape {values.shape}, the table has {len(table.tokens)} tokens: "
            "pass a per-token array over the table's flat stream (e.g. Advantages.token)"
        )
    return values


def _to_torch(cols: dict[str, np.ndarray], episodes: np.ndarray, lengths: np.ndarray, device: Any) -> dict[str, Any]:
    import torch

    device = torch.device("cpu") if device is None else torch.device(device)
    out = {}
    for name, arr in cols.items():
        t = torch.from_numpy(np.ascontiguousarray(arr))
        if t.is_floating_point():
            t = t.float()
        out[name] = t.to(device)
    out["episode"] = torch.as_tensor(episodes, dtype=torch.long).to(device)
    out["lengths"] = torch.as_tensor(lengths, dtype=torch.long).to(device)
    return out
