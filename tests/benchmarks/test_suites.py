"""The shipped suites validate and name every built-in game, each of them registered."""

from __future__ import annotations

import pytest

from turngym.benchmarks.suite import load_suite, suite_names
from turngym.core.registry import env_info

GAMES = {
    "turngym/GuessNumber-v0", "turngym/Wordle-v0", "turngym/Maze-v0", "turngym/TextNav-v0",
    "turngym/ChessEndgame-v0", "turngym/TwentyQuestions-v0", "turngym/GuessMyCity-v0", "turngym/Chess-v0",
}


@pytest.mark.parametrize("name", ["smoke", "text-games"])
def test_shipped_suite_names_every_builtin_game(name):
    assert name in suite_names()
    suite = load_suite(name)
    assert {e.id for e in suite.envs} == GAMES
    for e in suite.envs:
        assert env_info(e.id).id == e.id  # registered (RegistryError otherwise)
    if name == "text-games":
        assert suite.episodes == 100 and all(e.episodes is None for e in suite.envs)
