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
for sampling. It keeps no format of its own: ``save`` writes the ring's position, counters and the
generator's state, then one reference per slot (run_id, episode_id, turn position) into an episode store
(turngym.benchmarks.store, the one episode format): the run's own store, where its episodes already are
(``save(path, store=run_dir / "episodes.jsonl")``), or else a store of the referenced episodes written
beside the file (``replay.episodes.jsonl``). ``load`` rebuilds the transitions from those episodes, so a
resumed run holds the same ring and draws exactly the samples the uninterrupted run would have drawn.

    buffer = ReplayBuffer(capacity=100_000, seed=0)
    buffer.add_episodes(episodes)
    batch = collate(buffer.sample(256))     # batch.states: list[str], batch.rewards: Tensor[256], ...
    buffer.save(ckpt / "replay.jsonl", store=run_dir / "episodes.jsonl"); buffer = ReplayBuffer.load(ckpt / "replay.jsonl")
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

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
VERSION = 2
#: where ``save`` writes the referenced episodes when no store is given: beside the file
_OWN_STORE_SUFFIX = ".episodes.jsonl"

#: a slot's source: (run_id, episode_id) of its episode and the turn's position in it
_Source = tuple[str, str, int]


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
        # the episode each slot's transition came from (None: added as a bare transition), and the episodes
        # some slot still holds, with how many: what ``save`` refers to
        self._sources: list[_Source | None] = [None] * capacity
        self._episodes: dict[tuple[str, str], Episode] = {}
        self._refs: dict[tuple[str, str], int] = {}

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
        self._put(transition, None)

    def _put(self, transition: Transition, source: _Source | None) -> None:
        old = self._sources[self._position]
        if old is not None:
            key = old[:2]
            self._refs[key] -= 1
            if not self._refs[key]:
                del self._refs[key], self._episodes[key]
        self._slots[self._position] = transition
        self._sources[self._position] = source
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
        n = 0
        for ep in episodes:
            key = (ep.run_id, ep.episode_id)
            for i, t in enumerate(episode_transitions(ep)):
                if key not in self._episodes:
                    self._episodes[key], self._refs[key] = ep, 0
                self._refs[key] += 1
                self._put(t, (*key, i))
                n += 1
        return n

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

    def save(self, path: str | os.PathLike[str], *, store: str | os.PathLike[str] | None = None) -> Path:
        """Write the buffer to ``path``, atomically: a header (capacity, position, counters, the generator's
        state, the episode store it refers to), then one line per slot, its (run_id, episode_id, turn).

        ``store``: an episode store that holds every episode the ring refers to (the run's own); it is
        referred to by its path relative to ``path``'s directory. Without one, those episodes are written
        to a store beside ``path`` (``replay.episodes.jsonl``), each once.
        """
        from turngym.benchmarks.store import EpisodeStore

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sources = self._sources[: self._size]
        if any(src is None for src in sources):
            raise ValueError(
                "the buffer holds transitions added without their episode (add/extend), which an episode store "
                "cannot refer to: fill it with add_episodes to save it"
            )
        if store is None:
            own = path.with_name(path.stem + _OWN_STORE_SUFFIX)
            tmp = own.with_name(own.name + ".tmp")
            tmp.unlink(missing_ok=True)
            with EpisodeStore(path=tmp, fsync=False) as out:
                out.extend(self._episodes.values())
            os.replace(tmp, own)
            ref = own.name
        else:
            ref = os.path.relpath(Path(store).resolve(), path.parent.resolve())
        header = {
            "format": FORMAT,
            "version": VERSION,
            "capacity": self._capacity,
            "position": self._position,
            "size": self._size,
            "added": self._added,
            "rng": self._rng.bit_generator.state,
            "episodes": ref,
        }
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(header) + "\n")
            f.writelines(json.dumps({"slot": list(src)}) + "\n" for src in sources)  # type: ignore[arg-type]
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReplayBuffer:
        """The buffer ``save`` wrote, with the same contents, position and generator state (its transitions
        rebuilt from the episode store it refers to)."""
        from turngym.benchmarks.store import read_episodes

        path = Path(path)
        with open(path, encoding="utf-8") as f:
            header = json.loads(f.readline() or "{}")
            if header.get("format") != FORMAT or header.get("version") != VERSION:
                raise ValueError(
                    f"{path} is not a turngym ArCHer replay buffer (format {header.get('format')!r}, version "
                    f"{header.get('version')!r}; expected {FORMAT!r} version {VERSION}); pass the run's replay file"
                )
            sources = [tuple(json.loads(line)["slot"]) for line in f if line.strip()]
        if len(sources) != header["size"]:
            raise ValueError(
                f"{path} holds {len(sources)} transitions but its header says {header['size']}: the file is "
                "truncated or corrupt; resume from an earlier checkpoint"
            )
        store = path.parent / header["episodes"]
        wanted = {(r, e) for r, e, _ in sources}
        episodes = {(e.run_id, e.episode_id): e for e in read_episodes(store) if (e.run_id, e.episode_id) in wanted}
        missing = wanted - episodes.keys()
        if missing:
            raise ValueError(
                f"{path} refers to {len(missing)} episodes that its episode store {store} does not hold (such as "
                f"{sorted(missing)[0]}): the store was moved, cut or replaced; resume from an earlier checkpoint"
            )
        buf = cls(capacity=int(header["capacity"]), seed=0)
        transitions = {key: episode_transitions(ep) for key, ep in episodes.items()}
        for slot, (run_id, episode_id, i) in enumerate(sources):
            key = (run_id, episode_id)
            buf._slots[slot] = transitions[key][int(i)]
            buf._sources[slot] = (run_id, episode_id, int(i))
            buf._refs[key] = buf._refs.get(key, 0) + 1
            buf._episodes[key] = episodes[key]
        buf._size = len(sources)
        buf._position = int(header["position"])
        buf._added = int(header["added"])
        buf._rng.bit_generator.state = header["rng"]
        return buf
