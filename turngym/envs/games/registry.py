"""Registration of the rule-based text games (ids ``turngym/<Game>-v0``)."""

from turngym.core.registry import register


def register_games() -> None:
    register(
        "turngym/GuessNumber-v0",
        "turngym.envs.games.guess_number:GuessNumberEnv",
        description="Guess a secret number; the env answers higher or lower. Reward 1 for the right guess.",
        max_turns=10,
        reward_range=(0.0, 1.0),
        tags=("game", "lmrl-gym"),
        expert="turngym.envs.games.guess_number:expert",
    )
