"""Chess against Stockfish: full games (Chess-v0) and K+Q / K+R against K endgames (ChessEndgame-v0).

The learner plays White. Moves are bracketed, in UCI (``[e2e4]``, ``[e7e8q]``) or SAN (``[Nf3]``,
``[O-O]``). Each observation shows the board (White in capitals), the FEN, Black's reply and the
legal moves. Board rules, SAN and game ends come from python-chess. As in LMRL-Gym
(``board.is_game_over()``), only automatic draws end a game (stalemate, insufficient material,
fivefold repetition, the 75-move rule); claimable ones (threefold, fifty moves) do not.

Reward (LMRL-Gym's ``ChessEnv.step``): 1 when White mates, -1 when White is mated, 0 for every
other move and for draws. An illegal or unreadable move is an invalid action with reward -1, as in
LMRL-Gym, and leaves the position unchanged. ``info["success"]`` is True only for a win.

The opponent is the ``stockfish`` binary (Debian's package), one process per env, started at the
first reset and ended by ``close()``. Searches are single-threaded and depth-limited, and the engine's
hash and history tables are cleared before each search (``ucinewgame``), so a search depends only on
the game so far: a seed replays the same game for the same moves (expert queries in between change
nothing), and a restored ``snapshot()`` (the board and the random streams; not the engine process)
plays on as the original game did, in any process.

- Chess-v0: Black plays at ``skill_level`` 0..20. Levels below 20 use Stockfish's own Skill Level
  rule (``Skill::pick_best``: search MultiPV 4 at depth 1 + level, add a weakness-scaled random
  push to each score, play the best pushed move), but with the env's seeded RNG instead of
  Stockfish's clock-seeded one, so games are reproducible. Level 20 plays the best move at
  ``opponent_depth``.
- ChessEndgame-v0: a random legal position (LMRL-Gym's ``large_piece_random_endgame``): White
  king and queen (``piece="Q"``) or rook (``piece="R"``) against the lone black king, White to
  move, nobody in check. Black defends with Stockfish at ``opponent_depth`` (``defender="random"``
  plays random legal moves instead).

Experts (oracles: they read the env's board). Chess-v0: the same engine at full strength, depth
``expert_depth``. ChessEndgame-v0: mate in one if there is one; once the black king's box is at most
``FINISH_BOX`` squares, Stockfish's move if it sees a forced mate at depth ``FINISH_DEPTH``;
otherwise the rule-based box method of ``chess_mate.py`` (Stockfish alone wanders in K+R v K).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Literal

import chess
import chess.engine
import numpy as np

from turngym.core.actions import BracketedMove
from turngym.core.env import TurnEnv
from turngym.core.errors import ActionError, EnvUnavailable
from turngym.core.registry import find_program
from turngym.core.types import Action, Observation
from turngym.envs.games.chess_mate import king_region, mate_in_one, mating_move

#: Stockfish's PawnValueMg caps the random push of the skill rule; centipawns here
PAWN = 100
MATE_SCORE = 32000
FINISH_BOX = 8
FINISH_DEPTH = 10


def skill_pick(scores: list[int], level: int, rng: np.random.Generator) -> int:
    """Stockfish's ``Skill::pick_best``: the index of the move to play among MultiPV ``scores``
    (best first, from the mover's side). Weaker levels push worse moves up by more, at random."""
    weakness = 120 - 2 * level
    top = scores[0]
    delta = min(top - scores[-1], PAWN)
    best, best_score = 0, -(10**9)
    for i, score in enumerate(scores):
        push = (weakness * (top - score) + delta * int(rng.integers(weakness))) // 128
        if score + push >= best_score:
            best, best_score = i, score + push
    return best


def _quit(engine: chess.engine.SimpleEngine) -> None:
    try:
        engine.quit()
    except (chess.engine.EngineError, chess.engine.EngineTerminatedError, TimeoutError):
        engine.close()


def board_text(board: chess.Board) -> str:
    """The board with rank and file labels, White in capitals."""
    rows = str(board).split("\n")
    return "  a b c d e f g h\n" + "\n".join(f"{8 - i} {row}" for i, row in enumerate(rows))


class StockfishChessEnv(TurnEnv):
    """Base of the chess envs: move parsing, game ends, the engine process. Subclasses set the
    start position (``_start``) and Black's reply (``_reply``)."""

    blocking = True  # engine calls block: async callers run steps in a thread
    invalid_penalty = -1.0
    #: the board and the random streams are picklable; the engine process is per process (a restored
    #: env starts its own at the next search)
    snapshot_unsupported = None
    snapshot_exclude = ("_engine", "_finalizer")

    def __init__(
        self,
        *,
        opponent_depth: int = 4,
        expert_depth: int = 8,
        show_legal_moves: bool = True,
        engine_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.opponent_depth, self.expert_depth = opponent_depth, expert_depth
        self.show_legal_moves = show_legal_moves
        self.engine_path = engine_path
        self.action_format = BracketedMove(move_pattern=r"[A-Za-z0-9=+#\-]{2,8}", example="[e2e4]", what="move")
        self.board = chess.Board()
        self.start_fen = self.board.fen()
        self._engine: chess.engine.SimpleEngine | None = None
        self._finalizer: weakref.finalize | None = None
        self.description = ""

    # -- engine ---------------------------------------------------------------------------------
    def engine(self) -> chess.engine.SimpleEngine:
        if self._engine is None:
            path = self.engine_path or find_program("stockfish")
            if path is None:
                raise EnvUnavailable("the stockfish program is not installed: apt-get install stockfish (make setup)")
            self._engine = chess.engine.SimpleEngine.popen_uci(path)
            self._engine.configure({"Threads": 1, "Hash": 16})
            # an env dropped without close() must not leave the process behind
            self._finalizer = weakref.finalize(self, _quit, self._engine)
        return self._engine

    def analyse(self, depth: int, multipv: int = 1) -> list[tuple[chess.Move, int]]:
        """The engine's best ``multipv`` moves at ``depth`` with scores (centipawns, side to move)."""
        # a new game id per search: python-chess sends ucinewgame, so no search sees an earlier one's tables
        limit = chess.engine.Limit(depth=depth)
        infos = self.engine().analyse(self.board, limit, multipv=multipv, game=object())
        turn = self.board.turn
        return [(i["pv"][0], i["score"].pov(turn).score(mate_score=MATE_SCORE)) for i in infos if i.get("pv")]

    def best_move(self, depth: int | None = None) -> chess.Move:
        """The engine's move at full strength."""
        return self.analyse(self.expert_depth if depth is None else depth)[0][0]

    async def aclose(self) -> None:
        """End the engine process (``close()`` runs this too); safe to call twice."""
        finalizer, self._finalizer, self._engine = self._finalizer, None, None
        if finalizer is not None:
            await asyncio.to_thread(finalizer)  # runs _quit once

    # -- the game -------------------------------------------------------------------------------
    def _start(self) -> chess.Board:
        raise NotImplementedError

    def _reply(self) -> chess.Move:
        raise NotImplementedError

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.engine()  # started here, so a missing binary fails at reset, not in the middle of a game
        self.board = self._start()
        self.start_fen = self.board.fen()
        return Observation.text(f"{self.description} {self.action_format.describe()}\n\n{self._show()}"), {}

    def step(self, action: Action):
        move = self._parse(self.action_format.parse(action))
        text = f"You played {self.board.san(move)}."
        self.board.push(move)
        outcome = self.board.outcome()
        if outcome is None:
            reply = self._reply()
            text += f" Black played {self.board.san(reply)}."
            self.board.push(reply)
            outcome = self.board.outcome()
        if outcome is None:
            return Observation.text(f"{text}\n\n{self._show()}"), 0.0, False, False, {}
        reward = {chess.WHITE: 1.0, chess.BLACK: -1.0, None: 0.0}[outcome.winner]
        result = {1.0: "You win", -1.0: "You lose", 0.0: "Draw"}[reward]
        text += f"\n{result}: {outcome.termination.name.lower().replace('_', ' ')}.\n{board_text(self.board)}"
        return Observation.text(text), reward, True, False, {"success": reward == 1.0, "result": self.board.result()}

    def _parse(self, text: str) -> chess.Move:
        board = self.board
        try:
            move = chess.Move.from_uci(text.lower())
            if move in board.legal_moves:
                return move
        except ValueError:
            pass
        try:
            return board.parse_san(text)
        except ValueError:
            legal = " ".join(m.uci() for m in board.legal_moves)
            raise ActionError(f"{text!r} is not a legal move for White here: play one of {legal}") from None

    def _show(self) -> str:
        text = f"{board_text(self.board)}\nFEN: {self.board.fen()}\nYou are White; your move."
        if self.show_legal_moves:
            text += "\nLegal moves: " + " ".join(m.uci() for m in self.board.legal_moves)
        return text

    def instance_state(self) -> Any:
        return {"fen": self.start_fen}

    def legal_actions(self) -> list[str]:
        return [f"[{m.uci()}]" for m in self.board.legal_moves]


class ChessEnv(StockfishChessEnv):
    """A full game from the standard position against Stockfish at ``skill_level``."""

    def __init__(self, *, skill_level: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 <= skill_level <= 20:
            raise ValueError(f"skill_level must be in 0..20 (Stockfish's Skill Level), got {skill_level}")
        self.skill_level = skill_level
        self.description = (
            f"Play chess as White against Stockfish (skill level {skill_level} of 20). Win by checkmate."
        )
        self._rng = np.random.default_rng(0)
        self._rng_seed = 0

    def _start(self) -> chess.Board:
        self._rng_seed = int(self.np_random.integers(2**63))  # the opponent's random stream: part of the instance
        self._rng = np.random.default_rng(self._rng_seed)
        return chess.Board()

    def _reply(self) -> chess.Move:
        if self.skill_level >= 20:
            return self.best_move(self.opponent_depth)
        lines = self.analyse(1 + self.skill_level, multipv=4)
        return lines[skill_pick([s for _, s in lines], self.skill_level, self._rng)][0]

    def instance_state(self) -> Any:
        return {"fen": self.start_fen, "skill_level": self.skill_level, "opponent_seed": self._rng_seed}


class ChessEndgameEnv(StockfishChessEnv):
    """K + Q or K + R against a lone king from a random position; mate within the turn limit."""

    def __init__(
        self, *, piece: Literal["Q", "R"] = "Q", defender: Literal["stockfish", "random"] = "stockfish", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if piece not in ("Q", "R"):
            raise ValueError(f"piece must be 'Q' (king and queen) or 'R' (king and rook), got {piece!r}")
        if defender not in ("stockfish", "random"):
            raise ValueError(f"defender must be 'stockfish' or 'random', got {defender!r}")
        self.piece, self.defender = piece, defender
        name = {"Q": "queen", "R": "rook"}[piece]
        self.description = f"Chess endgame: you are White with king and {name} against the lone black king. Checkmate it."

    def _start(self) -> chess.Board:
        board = chess.Board(None)
        while True:
            board.clear()
            squares = self.np_random.choice(64, size=3, replace=False)
            for symbol, square in zip(("K", self.piece, "k"), squares):
                board.set_piece_at(int(square), chess.Piece.from_symbol(symbol))
            board.turn = chess.WHITE
            if board.is_valid() and not board.is_check() and board.outcome() is None:
                return board

    def _reply(self) -> chess.Move:
        if self.defender == "random":
            moves = list(self.board.legal_moves)
            return moves[int(self.np_random.integers(len(moves)))]
        return self.best_move(self.opponent_depth)


def expert(env: StockfishChessEnv):
    """Stockfish at full strength, depth ``env.expert_depth`` (an oracle: it reads the env's board)."""

    def policy(obs: Observation) -> str:
        return f"[{env.best_move().uci()}]"

    return policy


def endgame_expert(env: StockfishChessEnv):
    """Box method with a Stockfish finish (see the module docstring)."""
    seen: set = set()

    def policy(obs: Observation) -> str:
        board = env.board
        seen.add(board._transposition_key())
        move = mate_in_one(board)
        if move is None and chess.popcount(king_region(board)) <= FINISH_BOX:
            best, score = env.analyse(FINISH_DEPTH)[0]
            if score >= MATE_SCORE - 1000:
                move = best
        if move is None:
            move = mating_move(board, seen)
        return f"[{move.uci()}]"

    return policy
