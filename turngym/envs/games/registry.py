"""Registration of the rule-based text games (ids ``turngym/<Game>-v0``).

Turn limits: Wordle allows 6 guesses plus 2 invalid replies; Maze 50 moves (the expert needs at
most 2 * (25 - 1) = 48 on the default 5x5 maze); TextNav 30 commands; Lookup 2 turns (a search,
then the answer: MT-GRPO's two-turn task); Twenty Questions and Guess My City 20 turns (ArCHer,
LMRL-Gym); CarDealer 10 turns (the expert sells in 3); ChessEndgame 50 White moves (K+R mates in at most 16 with best play); Chess 150 White
moves. Reward ranges are per step.
"""

from turngym.core.registry import register

_GAMES = "turngym.envs.games"


def register_games() -> None:
    register(
        "turngym/GuessNumber-v0",
        f"{_GAMES}.guess_number:GuessNumberEnv",
        description="Guess a secret number; the env answers higher or lower. Reward 1 for the right guess.",
        max_turns=10,
        reward_range=(0.0, 1.0),
        tags=("game", "lmrl-gym"),
        expert=f"{_GAMES}.guess_number:expert",
    )
    register(
        "turngym/Wordle-v0",
        f"{_GAMES}.wordle:WordleEnv",
        description="Find a hidden 5-letter word in 6 guesses from per-letter marks. Reward -1 per failed guess.",
        max_turns=8,
        reward_range=(-1.0, 0.0),
        tags=("game", "lmrl-gym", "word"),
        expert=f"{_GAMES}.wordle:expert",
    )
    register(
        "turngym/Maze-v0",
        f"{_GAMES}.maze:MazeEnv",
        description="Walk a seeded grid maze to the goal, seeing only your position and the open directions.",
        max_turns=50,
        reward_range=(-4.0, 0.0),
        tags=("game", "lmrl-gym", "navigation", "partial-observation"),
        expert=f"{_GAMES}.maze:expert",
    )
    register(
        "turngym/TextNav-v0",
        f"{_GAMES}.text_nav:TextNavEnv",
        description="Text adventure: carry an object through the rooms of a house into a container.",
        max_turns=30,
        reward_range=(0.0, 1.0),
        tags=("game", "lmrl-gym", "navigation", "text-adventure"),
        expert=f"{_GAMES}.text_nav:expert",
    )
    register(
        "turngym/Lookup-v0",
        f"{_GAMES}.lookup:LookupEnv",
        description="Two-turn tool task (MT-GRPO): search a person's record, then answer their city. "
        "Reward 0.5 for a search that finds the answer, 1 for the exact answer.",
        max_turns=2,
        reward_range=(0.0, 1.0),
        tags=("game", "tool", "mt-grpo", "turn-reward"),
        expert=f"{_GAMES}.lookup:expert",
    )
    register(
        "turngym/ChessEndgame-v0",
        f"{_GAMES}.chess_games:ChessEndgameEnv",
        description="Chess endgame as White: mate the lone black king with king and queen (or rook, piece='R').",
        max_turns=50,
        reward_range=(-1.0, 1.0),
        tags=("game", "lmrl-gym", "chess"),
        expert=f"{_GAMES}.chess_games:endgame_expert",
        requires=("bin:stockfish",),
    )
    register(
        "turngym/Chess-v0",
        f"{_GAMES}.chess_games:ChessEnv",
        description="A full chess game as White against Stockfish at a configurable skill level (skill_level=0..20).",
        max_turns=150,
        reward_range=(-1.0, 1.0),
        tags=("game", "lmrl-gym", "chess"),
        expert=f"{_GAMES}.chess_games:expert",
        requires=("bin:stockfish",),
    )
    register(
        "turngym/TwentyQuestions-v0",
        f"{_GAMES}.twenty_questions:TwentyQuestionsEnv",
        description="Find a hidden object among 150 by yes/no questions about its attributes. Reward -1 per turn.",
        max_turns=20,
        reward_range=(-1.0, 0.0),
        tags=("game", "lmrl-gym", "archer", "questions"),
        expert=f"{_GAMES}.twenty_questions:expert",
    )
    register(
        "turngym/GuessMyCity-v0",
        f"{_GAMES}.guess_my_city:GuessMyCityEnv",
        description="Find a hidden city among 141 by yes/no questions (continent, country, size...). Reward -1 per turn.",
        max_turns=20,
        reward_range=(-1.0, 0.0),
        tags=("game", "lmrl-gym", "archer", "questions"),
        expert=f"{_GAMES}.guess_my_city:expert",
    )
    register(
        "turngym/CarDealer-v0",
        f"{_GAMES}.car_dealer:CarDealerEnv",
        description="Sell a car to a customer with a hidden budget and preferences (a rule-based buyer, or a model "
        "with partner='hf:PATH'). Reward: the sale price over the budget, 0 without a sale.",
        max_turns=10,
        reward_range=(0.0, 1.0),
        tags=("game", "lmrl-gym", "dialogue", "partner"),
        expert=f"{_GAMES}.car_dealer:expert",
    )
    register(
        "turngym/Wait-v0",
        f"{_GAMES}.wait:WaitEnv",
        description="A timing env: each step waits step_seconds (50 ms, I/O-bound) for `turns` turns (5); repeat "
        "the code shown. For measuring runners and rollout workers.",
        max_turns=1000,
        reward_range=(0.0, 1.0),
        tags=("benchmark",),
        expert=f"{_GAMES}.wait:expert",
    )
