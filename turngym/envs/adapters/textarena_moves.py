"""Moves for TextArena games: the opponents of the learner and the adapter's ``legal_actions``.

``candidate_moves(game, history)`` lists moves a player may send, read from what the game showed
that player (``history``: its messages, oldest first):

1. a per-game generator where the game needs one (a number in range, a word, a column, a pile);
2. else the bracketed moves of the latest line that lists them ("Available Moves: '[0]', '[4]'");
3. else the bracketed examples of the game's rules ("for example '[col 4]'").

An opponent is ``"random"`` (uniform over the candidates), ``"first-legal"`` (the first one) or
any callable ``str -> str`` that gets the opponent's new observation text.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from functools import cache

#: a bracketed move: short, one line, not a role tag such as [GAME] or [Player 1]
_MOVE = re.compile(r"\[([^\[\]\n]{1,40})\]")
_ROLE = re.compile(r"^(GAME|Player \d+|Team \d+|Moderator)$")
_LISTING = re.compile(r"available|valid|legal|possible|options|choose|choices", re.IGNORECASE)
#: a placeholder in a listed move ("[bet X]", "Submit '[X]'"): a move needs a number there
_PLACEHOLDER = re.compile(r"\b[XN]\b")

Opponent = Callable[[str], str]


def bracketed(text: str) -> list[str]:
    """The distinct bracketed moves of ``text``, in order, as ``[move]``; a placeholder X or N becomes 1."""
    seen: dict[str, None] = {}
    for m in _MOVE.findall(text):
        if not _ROLE.match(m.strip()):
            seen.setdefault(f"[{_PLACEHOLDER.sub('1', m)}]", None)
    return list(seen)


@cache
def _words(length: int) -> tuple[str, ...]:
    """Basic English words of ``length`` letters (the NLTK corpus the set-up builds)."""
    try:
        from nltk.corpus import words

        pool = words.words("en-basic")
    except LookupError:
        return ()
    return tuple(w for w in pool if len(w) == length and w.isalpha())


def _range_from(history: Sequence[str], pattern: str) -> tuple[int, int] | None:
    for text in reversed(history):
        m = re.search(pattern, text)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def _guess_the_number(history: Sequence[str]) -> list[str]:
    bounds = _range_from(history, r"between (\d+) and (\d+)")
    if bounds is None:
        return []
    lo, hi = bounds
    for text in history:  # narrow with the hints seen so far
        for guess, hint in re.findall(r"\[(\d+)\][^\[]*?The target number is (higher|lower)", text):
            if hint == "higher":
                lo = max(lo, int(guess) + 1)
            else:
                hi = min(hi, int(guess) - 1)
    return [f"[{n}]" for n in range(lo, hi + 1)] or [f"[{bounds[0]}]"]


def _wordle(history: Sequence[str]) -> list[str]:
    m = re.search(r"secret (\d+)-letter word", "\n".join(history))
    return [f"[{w}]" for w in _words(int(m.group(1)) if m else 5)]


def _connect_four(history: Sequence[str]) -> list[str]:
    m = re.search(r"(\d+) columns", "\n".join(history))
    return [f"[col {c}]" for c in range(int(m.group(1)) if m else 7)]


def _nim(history: Sequence[str]) -> list[str]:
    for text in reversed(history):
        piles = re.findall(r"pile (\d+): (\d+)", text)
        if piles:
            return [f"[{p} {q}]" for p, n in piles for q in range(1, int(n) + 1)]
    return []


#: TextArena game family (the id up to "-v") -> generator
GENERATORS: dict[str, Callable[[Sequence[str]], list[str]]] = {
    "GuessTheNumber": _guess_the_number,
    "Wordle": _wordle,
    "ConnectFour": _connect_four,
    "Nim": _nim,
}


def family(game: str) -> str:
    return game.split("-v", 1)[0]


def candidate_moves(game: str, history: Sequence[str]) -> list[str]:
    """Moves worth trying now in ``game``; see the module docstring. May be empty."""
    gen = GENERATORS.get(family(game))
    if gen is not None:
        moves = gen(history)
        if moves:
            return moves
    for text in reversed(history):
        for line in reversed(text.splitlines()):
            if _LISTING.search(line):
                moves = bracketed(line)
                if moves:
                    return moves
    for text in history:
        moves = bracketed(text)
        if moves:
            return moves
    return []


class MovePicker:
    """An opponent that reads the game's messages and picks among ``candidate_moves``."""

    def __init__(self, game: str, *, mode: str, rng: random.Random) -> None:
        if mode not in ("random", "first-legal"):
            raise ValueError(f"opponent {mode!r} is unknown: use 'random', 'first-legal' or a callable str -> str")
        self.game, self.mode, self.rng = game, mode, rng
        self.history: list[str] = []

    def __call__(self, observation: str) -> str:
        self.history.append(observation)
        moves = candidate_moves(self.game, self.history)
        if not moves:
            return "[0]"
        return moves[0] if self.mode == "first-legal" else moves[self.rng.randrange(len(moves))]


def make_opponent(spec: str | Opponent, game: str, rng: random.Random) -> Opponent:
    """The opponent for ``spec``: a fresh ``MovePicker`` per episode, or the user's callable."""
    if callable(spec):
        return spec
    return MovePicker(game, mode=spec, rng=rng)
