"""ArCHer's turn replay buffer: transitions (s, a, r, s', done), one per turn of the recorded episodes.

    s     = the dialogue history before the turn: the episode's prompt, then each earlier turn's
            assistant message and observation messages
    a     = the turn's utterance (the action text; native tool calls rendered after it)
    r     = the turn's reward
    s'    = s + [a as an assistant message] + the turn's observation messages
    done  = the episode's last turn and terminated (a truncated or failed episode bootstraps from V(s'))

Every transition of an episode points into one shared tuple, the episode's whole history of (frozen)
``Message`` objects: s and s' are its prefixes, so a turn costs O(1) memory and the file stores each
episode's messages once. Where the episode has a token stream (LLM agents), each transition also points
into it: ``state_ids``, ``action_ids``, ``next_state_ids`` are the exact tokens the policy saw and sampled
(the token-faithful context for re-sampling a~ ~ pi(.|s)).

The buffer is a fixed-capacity ring (the oldest transition is overwritten) with a seeded numpy generator
for sampling. ``save``/``load`` write and read one JSONL file with the ring's contents, position and the
generator's state, so a resumed run draws exactly the samples the uninterrupted run would have drawn.

    buffer = ReplayBuffer(capacity=100_000, seed=0)
    buffer.add_episodes(episodes)
    batch = collate(buffer.sample(256))     # batch.states: list[str], batch.rewards: Tensor[256], ...
    buffer.save(run_dir / "replay.jsonl"); buffer = ReplayBuffer.load(run_dir / "replay.jsonl")
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import TypeAdapter

from turngym.core.types import Episode, Message

__all__ = [
    "ReplayBuffer",
    "Transition",
    "TransitionBatch",
    "collate",
    "episode_transitions",
    "history_text",
    "message_text",
]

FORMAT = "turngym.archer.replay"
VERSION = 1
_HISTORY = TypeAdapter(tuple[Message, ...])


def _pack_ids(ids: Sequence[int]) -> str:
    """Token ids as base64 of little-endian int32: a fraction of the size and time of a JSON list."""
    return base64.b64encode(np.asarray(ids, dtype="<i4").tobytes()).decode("ascii")


def _unpack_ids(text: str) -> tuple[int, ...]:
    return tuple(np.frombuffer(base64.b64decode(text), dtype="<i4").tolist())


def message_text(message: Message) -> str:
    """The text of a message, with its tool calls (if any) rendered as JSON after it."""
    text = message.text
    if message.tool_calls:
        calls = json.dumps([{"name": c.name, "arguments": c.arguments} for c in message.tool_calls])
        text = f"{text}\n{calls}" if text else calls
    return text


def history_text(messages: Sequence[Message]) -> str:
    """A dialogue history as plain text for the critic's encoder: ``role: text`` blocks, oldest first."""
    return "\n".join(f"{m.role}: {message_text(m)}" for m in messages)


@dataclass(frozen=True, slots=True)
class Transition:
    """One turn (s, a, r, s', done) of a recorded episode.

    ``history`` is the episode's whole message history (one tuple shared by all its transitions):
    s = ``history[:state_end]``, s' = ``history[:next_state_end]``. ``tokens`` is the episode's token
    stream (shared likewise) and ``spans`` = (end of s, end of a, end of s') into it; both None for agents
    that record no tokens.
    """

    history: tuple[Message, ...]
    state_end: int
    next_state_end: int
    action: str
    reward: float
    done: bool
    episode_id: str = ""
    turn: int = 0
    tokens: tuple[int, ...] | None = None
    spans: tuple[int, int, int] | None = None

    @property
    def state(self) -> tuple[Message, ...]:
        """s: the messages before the turn."""
        return self.history[: self.state_end]

    @property
    def next_state(self) -> tuple[Message, ...]:
        """s': s, the turn's assistant message and its observation messages."""
        return self.history[: self.next_state_end]

    @property
    def state_text(self) -> str:
        return history_text(self.state)

    @property
    def next_state_text(self) -> str:
        return history_text(self.next_state)

    @property
    def state_ids(self) -> list[int] | None:
        """The tokens of s: the policy's context when it sampled a."""
        return None if self.tokens is None or self.spans is None else list(self.tokens[: self.spans[0]])

    @property
    def action_ids(self) -> list[int] | None:
        """The tokens of a, as sampled."""
        return None if self.tokens is None or self.spans is None else list(self.tokens[self.spans[0] : self.spans[1]])

    @property
    def next_state_ids(self) -> list[int] | None:
        """The tokens of s': the next turn's context (the whole stream after the last turn)."""
        return None if self.tokens is None or self.spans is None else list(self.tokens[: self.spans[2]])


def _spans(episode: Episode, i: int) -> tuple[int, int, int] | None:
    """(end of s, end of a, end of s') of turn ``i`` in the episode's token stream, or None without one."""
    turn = episode.turns[i]
    n = len(episode.tokens)
    if not n or turn.action_span is None:
        return None
    start, end = turn.action_span
    nxt = episode.turns[i + 1].action_span if i + 1 < len(episode.turns) else None
    if nxt is not None:
        next_end = nxt[0]  # s'_t is exactly the context of turn t + 1
    elif turn.observation_span is not None:
        next_end = turn.observation_span[1]
    else:
        next_end = n
    if not 0 <= start <= end <= next_end <= n:
        raise ValueError(
            f"episode {episode.episode_id!r} turn {i}: action_span {turn.action_span} and next end {next_end} "
            f"do not fit its token stream of {n} tokens; the episode record is inconsistent (re-record it)"
        )
    return start, end, next_end


def episode_transitions(episode: Episode) -> list[Transition]:
    """One transition per turn of ``episode`` (see the module docstring for s, a, r, s', done)."""
    history: list[Message] = list(episode.prompt)
    ends: list[tuple[int, int]] = []
    actions: list[str] = []
    for turn in episode.turns:
        said = Message(role="assistant", content=turn.action, tool_calls=turn.tool_calls)
        start = len(history)
        history.append(said)
        history.extend(turn.observation)
        ends.append((start, len(history)))
        actions.append(message_text(said))
    shared = tuple(history)
    tokens = tuple(episode.tokens) if episode.tokens else None
    last = len(episode.turns) - 1
    out = []
    for i, turn in enumerate(episode.turns):
        spans = _spans(episode, i) if tokens is not None else None
        out.append(
            Transition(
                history=shared,
                state_end=ends[i][0],
                next_state_end=ends[i][1],
                action=actions[i],
                reward=float(turn.reward),
                done=i == last and turn.terminated,
                episode_id=episode.episode_id,
                turn=turn.index,
                tokens=tokens if spans is not None else None,
                spans=spans,
            )
        )
    return out


@dataclass(frozen=True)
class TransitionBatch:
    """A sampled batch, ready for the critic: texts for the encoder, tensors for the TD target."""

    states: list[str]  # s as text, [B]
    actions: list[str]  # a, [B]
    rewards: torch.Tensor  # r, [B]
    next_states: list[str]  # s' as text, [B]
    dones: torch.Tensor  # done as 0./1., [B]
    transitions: list[Transition]  # the records (token ids, provenance)


def collate(
    transitions: Sequence[Transition], *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> TransitionBatch:
    return TransitionBatch(
        states=[t.state_text for t in transitions],
        actions=[t.action for t in transitions],
        rewards=torch.tensor([t.reward for t in transitions], dtype=dtype, device=device),
        next_states=[t.next_state_text for t in transitions],
        dones=torch.tensor([float(t.done) for t in transitions], dtype=dtype, device=device),
        transitions=list(transitions),
    )


class ReplayBuffer:
    """A fixed-capacity ring of transitions with seeded uniform sampling (with replacement)."""

    def __init__(self, *, capacity: int = 100_000, seed: int | None = 0):
        if capacity < 1:
            raise ValueError(f"capacity={capacity}: a replay buffer holds at least one transition")
        self._capacity = capacity
        self._slots: list[Transition | None] = [None] * capacity
        self._position = 0  # the slot the next transition goes to
        self._size = 0
        self._added = 0  # transitions added over the buffer's life (the ring wrapped added // capacity times)
        self._rng = np.random.default_rng(seed)

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def position(self) -> int:
        return self._position

    @property
    def added(self) -> int:
        return self._added

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"ReplayBuffer(size={self._size}, capacity={self._capacity}, position={self._position})"

    def add(self, transition: Transition) -> None:
        self._slots[self._position] = transition
        self._position = (self._position + 1) % self._capacity
        self._size = min(self._size + 1, self._capacity)
        self._added += 1

    def extend(self, transitions: Iterable[Transition]) -> int:
        """Add transitions in order; returns how many were added."""
        n = 0
        for t in transitions:
            self.add(t)
            n += 1
        return n

    def add_episodes(self, episodes: Iterable[Episode]) -> int:
        """Add one transition per turn of each episode; returns how many were added."""
        return sum(self.extend(episode_transitions(ep)) for ep in episodes)

    def transitions(self) -> list[Transition]:
        """The stored transitions, oldest first."""
        if self._size < self._capacity:
            order: Iterable[int] = range(self._size)
        else:
            order = [*range(self._position, self._capacity), *range(self._position)]
        return [self._slots[i] for i in order]  # type: ignore[misc]

    def sample(self, batch_size: int) -> list[Transition]:
        """``batch_size`` transitions drawn uniformly with replacement by the buffer's own generator."""
        if self._size == 0:
            raise ValueError(
                "cannot sample from an empty replay buffer; add episodes first (add_episodes) or, when resuming, "
                "load the run's saved buffer (ReplayBuffer.load)"
            )
        idx = self._rng.integers(0, self._size, size=batch_size)
        return [self._slots[i] for i in idx]  # type: ignore[misc]

    # -- persistence -------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the buffer (contents, position, generator state) to one JSONL file, atomically.

        Each episode's history and token stream is written once; its transitions refer to them by index.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        header = {
            "format": FORMAT,
            "version": VERSION,
            "capacity": self._capacity,
            "position": self._position,
            "size": self._size,
            "added": self._added,
            "rng": self._rng.bit_generator.state,
        }
        histories: dict[int, int] = {}  # id(history tuple) -> index in the file
        streams: dict[int, int] = {}  # id(tokens tuple) -> index in the file
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(header) + "\n")
            for t in self._slots[: self._size]:
                assert t is not None
                h = histories.get(id(t.history))
                if h is None:
                    h = histories[id(t.history)] = len(histories)
                    msgs = [m.model_dump(mode="json", exclude_none=True) for m in t.history]
                    f.write(json.dumps({"history": msgs}) + "\n")
                row: dict[str, Any] = {
                    "history": h,
                    "s": t.state_end,
                    "s2": t.next_state_end,
                    "a": t.action,
                    "r": t.reward,
                    "done": t.done,
                    "episode_id": t.episode_id,
                    "turn": t.turn,
                }
                if t.tokens is not None:
                    k = streams.get(id(t.tokens))
                    if k is None:
                        k = streams[id(t.tokens)] = len(streams)
                        f.write(json.dumps({"tokens": _pack_ids(t.tokens)}) + "\n")
                    row["tokens"] = k
                    row["spans"] = list(t.spans) if t.spans is not None else None
                f.write(json.dumps({"transition": row}) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReplayBuffer:
        """The buffer ``save`` wrote, with the same contents, position and generator state."""
        path = Path(path)
        with open(path, encoding="utf-8") as f:
            header = json.loads(f.readline() or "{}")
            if header.get("format") != FORMAT or header.get("version") != VERSION:
                raise ValueError(
                    f"{path} is not a turngym ArCHer replay buffer (format {header.get('format')!r}, version "
                    f"{header.get('version')!r}; expected {FORMAT!r} version {VERSION}); pass the run's replay file"
                )
            buf = cls(capacity=int(header["capacity"]), seed=0)
            histories: list[tuple[Message, ...]] = []
            streams: list[tuple[int, ...]] = []
            slots: list[Transition] = []
            for line in f:
                rec = json.loads(line)
                if "history" in rec:
                    histories.append(_HISTORY.validate_python(rec["history"]))
                elif "tokens" in rec:
                    streams.append(_unpack_ids(rec["tokens"]))
                else:
                    row = rec["transition"]
                    spans = row.get("spans")
                    slots.append(
                        Transition(
                            history=histories[row["history"]],
                            state_end=int(row["s"]),
                            next_state_end=int(row["s2"]),
                            action=row["a"],
                            reward=float(row["r"]),
                            done=bool(row["done"]),
                            episode_id=row["episode_id"],
                            turn=int(row["turn"]),
                            tokens=streams[row["tokens"]] if "tokens" in row else None,
                            spans=tuple(spans) if spans is not None else None,  # type: ignore[arg-type]
                        )
                    )
        if len(slots) != header["size"]:
            raise ValueError(
                f"{path} holds {len(slots)} transitions but its header says {header['size']}: the file is "
                "truncated or corrupt; resume from an earlier checkpoint"
            )
        buf._slots[: len(slots)] = slots
        buf._size = len(slots)
        buf._position = int(header["position"])
        buf._added = int(header["added"])
        buf._rng.bit_generator.state = header["rng"]
        return buf
