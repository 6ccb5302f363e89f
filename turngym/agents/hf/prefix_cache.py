"""Prefix KV reuse: a conversation only appends, so turn t+1's prompt starts with turn t's prompt and
reply. After a batch, each row's KV (the prompt and the reply tokens that were fed: not the last
sampled token nor the forced ones after it) is kept, keyed by its token sequence; a later request
whose prompt starts with a kept sequence prefills only the rest on top of it (``kv.stack_prefixes``
lays the kept KV out in the batch's cache). Kept entries are bounded (least recently used out past
``max_tokens`` tokens), dropped once a request extends them, and all dropped when new weights are
loaded."""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = ["Prefix", "PrefixCache"]


@dataclass
class Prefix:
    """A finished request's token sequence and its KV: one ``(keys, values)`` per layer, ``[heads, len, dim]``."""

    tokens: tuple[int, ...]
    kv: list[tuple[Any, Any]]


class PrefixCache:
    """Kept KV of finished requests, keyed by their token sequence, least recently used out past
    ``max_tokens`` tokens in all. ``match`` finds the longest kept sequence a prompt starts with."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self.tokens = 0
        self._entries: OrderedDict[int, Prefix] = OrderedDict()
        self._lengths: Counter[int] = Counter()

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, prompt: list[int]) -> Prefix | None:
        """The longest kept sequence that is a proper prefix of ``prompt`` (at least one new token)."""
        for n in sorted((n for n in self._lengths if n < len(prompt)), reverse=True):
            head = tuple(prompt[:n])
            hit = self._entries.get(hash(head))
            if hit is not None and hit.tokens == head:
                self._entries.move_to_end(hash(head))
                return hit
        return None

    def add(self, tokens: tuple[int, ...], kv: list[tuple[Any, Any]]) -> None:
        if not tokens or len(tokens) > self.max_tokens:
            return
        clash = self._entries.pop(hash(tokens), None)  # the same sequence kept again, or a hash collision
        if clash is not None:
            self._forget(clash)
        self._entries[hash(tokens)] = Prefix(tokens, kv)
        self._lengths[len(tokens)] += 1
        self.tokens += len(tokens)
        while self.tokens > self.max_tokens:
            _, old = self._entries.popitem(last=False)
            self._forget(old)

    def discard(self, tokens: tuple[int, ...]) -> None:
        old = self._entries.get(hash(tokens))
        if old is not None and old.tokens == tokens:
            del self._entries[hash(tokens)]
            self._forget(old)

    def _forget(self, old: Prefix) -> None:
        self.tokens -= len(old.tokens)
        self._lengths[len(old.tokens)] -= 1
        if not self._lengths[len(old.tokens)]:
            del self._lengths[len(old.tokens)]

    def clear(self) -> None:
        self._entries.clear()
        self._lengths.clear()
        self.tokens = 0
