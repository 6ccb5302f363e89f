"""Wordle: find a hidden 5-letter word in 6 guesses; each guess is marked letter by letter.

Marks: ``G`` the letter is in the word at this place, ``Y`` it is in the word elsewhere, ``-`` it is
not in the word (repeated letters are marked as in the New York Times game: a letter is marked ``Y``
only as many times as the word has it left over after the ``G`` marks).

Reward (LMRL-Gym's ``WordleGame.reward``): -1 for every guess that does not solve the puzzle, 0 for
the guess that does, so the return is minus the number of failed guesses. A guess that is not a
5-letter word of the list is an invalid action (penalty -1, LMRL-Gym's ``bad_word_reward``) and
does not use up a guess. ``info["success"]`` is True when the word is found within the guesses.

Words ship with the package (``data/wordle_*.txt``, made by ``scripts/data/make_wordle_lists.py`` from the
``english-words`` and ``wordfreq`` packages): 3,686 allowed guesses; the hidden word is drawn from
the 1,347 most common of them.

The expert is a real solver that reads only the marks: it keeps the answers consistent with every
mark so far and plays the answer whose marks split them into the most even groups (maximum entropy).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from turngym.core.actions import BracketedMove
from turngym.core.env import TurnEnv
from turngym.core.errors import ActionError
from turngym.core.types import Action, Observation

WORD_LENGTH = 5


@cache
def word_lists() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(answers, allowed guesses), both sorted."""
    data = resources.files("turngym.envs.games") / "data"
    answers = tuple(data.joinpath("wordle_answers.txt").read_text().split())
    guesses = tuple(data.joinpath("wordle_guesses.txt").read_text().split())
    return answers, guesses


@cache
def _guess_set() -> frozenset[str]:
    return frozenset(word_lists()[1])


@cache
def _legal() -> tuple[str, ...]:
    return tuple(f"[{w}]" for w in word_lists()[1])


def feedback(guess: str, answer: str) -> str:
    """The marks of ``guess`` against ``answer``: ``G``, ``Y`` or ``-`` per letter."""
    marks = ["-"] * WORD_LENGTH
    left: dict[str, int] = {}
    for i, (g, a) in enumerate(zip(guess, answer)):
        if g == a:
            marks[i] = "G"
        else:
            left[a] = left.get(a, 0) + 1
    for i, g in enumerate(guess):
        if marks[i] == "-" and left.get(g, 0) > 0:
            marks[i] = "Y"
            left[g] -= 1
    return "".join(marks)


class WordleEnv(TurnEnv):
    #: the whole state is picklable attributes: TurnEnv.snapshot() saves them
    snapshot_unsupported = None
    invalid_penalty = -1.0

    def __init__(self, *, max_guesses: int = 6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if max_guesses < 1:
            raise ValueError(f"max_guesses must be >= 1, got {max_guesses}")
        self.max_guesses = max_guesses
        self.action_format = BracketedMove(move_pattern=r"[A-Za-z]{5}", example="[crane]", what="word")
        self.description = (
            f"Let's play Wordle. Find the hidden 5-letter English word in {max_guesses} guesses. After each "
            "guess I mark every letter: G = right letter in the right place, Y = the letter is in the word "
            "but elsewhere, - = the letter is not in the word. Each guess must be a common English word."
        )
        self.answer = word_lists()[0][0]
        self.guesses: list[str] = []
        self._prompt = f"{self.description} {self.action_format.describe()}"

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        answers = word_lists()[0]
        self.answer = answers[int(self.np_random.integers(len(answers)))]
        self.guesses = []
        return Observation.text(self._prompt), {}

    def step(self, action: Action):
        word = self.action_format.parse(action).lower()
        if word not in _guess_set():
            raise ActionError(f"{word!r} is not in the word list: guess a common 5-letter English word")
        self.guesses.append(word)
        marks = feedback(word, self.answer)
        n = len(self.guesses)
        line = f"{word.upper()}: {' '.join(marks)}"
        if word == self.answer:
            return Observation.text(f"{line}\nSolved in {n}!"), 0.0, True, False, {"success": True}
        if n >= self.max_guesses:
            text = f"{line}\nOut of guesses: the word was {self.answer.upper()}."
            return Observation.text(text), -1.0, True, False, {"success": False}
        return Observation.text(f"{line}\n{self.max_guesses - n} guesses left."), -1.0, False, False, {}

    def instance_state(self) -> Any:
        return {"answer": self.answer, "max_guesses": self.max_guesses}

    def legal_actions(self) -> list[str]:
        return list(_legal())


# -- the solver -----------------------------------------------------------------------------------
_MARKS = re.compile(r"\b([A-Z]{5}): ([GY-](?: [GY-]){4})")
_BASE3 = np.array([81, 27, 9, 3, 1])


def _code(marks: str) -> int:
    """Marks as a base-3 number (``-`` 0, ``Y`` 1, ``G`` 2)."""
    return sum({"-": 0, "Y": 1, "G": 2}[m] * p for m, p in zip(marks, (81, 27, 9, 3, 1)))


@cache
def pattern_matrix() -> np.ndarray:
    """``P[g, a]`` = the marks (base-3 code) of answer ``g`` guessed against answer ``a``, vectorised over ``a``."""
    answers = word_lists()[0]
    words = np.array([[ord(c) - 97 for c in w] for w in answers], dtype=np.int8)
    n = len(answers)
    out = np.empty((n, n), dtype=np.uint8)
    rows = np.arange(n)
    letters = np.zeros((n, 26), dtype=np.int8)
    for i in range(WORD_LENGTH):
        np.add.at(letters, (rows, words[:, i]), 1)
    for gi, g in enumerate(words):
        green = words == g
        left = letters.copy()
        for i in range(WORD_LENGTH):  # letters of the answer not matched by a G
            left[rows, words[:, i]] -= green[:, i]
        code = np.zeros(n, dtype=np.int32)
        for i in range(WORD_LENGTH):
            c = g[i]
            yellow = ~green[:, i] & (left[:, c] > 0)
            left[:, c] -= yellow
            code += _BASE3[i] * (2 * green[:, i] + yellow)
        out[gi] = code
    return out


def best_guess(candidates: np.ndarray) -> int:
    """The answer index whose marks split ``candidates`` most evenly (maximum entropy); candidates win ties."""
    if len(candidates) <= 2:
        return int(candidates[0])
    sub = pattern_matrix()[:, candidates].astype(np.int64)
    g = sub.shape[0]
    counts = np.bincount((sub + 243 * np.arange(g)[:, None]).ravel(), minlength=243 * g).reshape(g, 243)
    p = counts / len(candidates)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.nansum(np.where(p > 0, p * np.log2(p), 0.0), axis=1)
    entropy[candidates] += 1e-3  # a candidate may be the answer itself
    return int(np.argmax(entropy))


@cache
def _opener() -> int:
    return best_guess(np.arange(len(word_lists()[0])))


def expert(env: WordleEnv):
    """Entropy solver over the answer list; reads only the marks in the observations."""
    answers = word_lists()[0]
    candidates = np.arange(len(answers))
    last: int | None = None

    def policy(obs: Observation) -> str:
        nonlocal candidates, last
        found = _MARKS.search(obs.last_text)
        if last is not None and found is not None:
            candidates = candidates[pattern_matrix()[last, candidates] == _code(found.group(2).replace(" ", ""))]
        if len(candidates) == 0:  # the answer is outside the list (a custom env): fall back to any word
            candidates = np.arange(len(answers))
        last = _opener() if len(candidates) == len(answers) else best_guess(candidates)
        return f"[{answers[last]}]"

    return policy
