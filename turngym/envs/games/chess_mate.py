"""A rule-based mating method for K+Q or K+R against a lone king (the endgame expert's core).

The box method: shrink the region the black king can reach without stepping on an attacked square,
then bring the white king closer, never stalemate and never leave the piece en prise. One move is
chosen by a 2-ply search (each White move against every Black reply) that maximises ``box_score``
after Black's best reply, with a penalty for returning to an earlier position. Stockfish on its own
(without tablebases, at a small depth) wanders in these endings, so the expert uses this method and
asks the engine only to finish once the box is small (see ``chess_games.endgame_expert``).
"""

from __future__ import annotations

import chess

_NOT_A = ~chess.BB_FILE_A & chess.BB_ALL
_NOT_H = ~chess.BB_FILE_H & chess.BB_ALL
LOST = -(10**6)
STALEMATE = -(10**7)
REPEAT_PENALTY = 1000


def _dilate(bb: int) -> int:
    """``bb`` plus every square one king step away."""
    row = bb | ((bb >> 1) & _NOT_H) | ((bb << 1) & _NOT_A)
    return (row | (row << 8) | (row >> 8)) & chess.BB_ALL


def king_region(board: chess.Board) -> int:
    """The squares the black king can reach through squares White does not attack (a bitboard)."""
    bk = board.king(chess.BLACK)
    assert bk is not None
    occupied = board.occupied & ~chess.BB_SQUARES[bk]  # the king does not shield the squares behind it
    attacked = 0
    for sq in chess.scan_forward(board.occupied_co[chess.WHITE]):
        kind = board.piece_type_at(sq)
        if kind == chess.KING:
            attacked |= chess.BB_KING_ATTACKS[sq]
            continue
        attacked |= chess.BB_RANK_ATTACKS[sq][chess.BB_RANK_MASKS[sq] & occupied]
        attacked |= chess.BB_FILE_ATTACKS[sq][chess.BB_FILE_MASKS[sq] & occupied]
        if kind == chess.QUEEN:
            attacked |= chess.BB_DIAG_ATTACKS[sq][chess.BB_DIAG_MASKS[sq] & occupied]
    free = chess.BB_ALL & ~attacked
    region = chess.BB_SQUARES[bk]
    while True:
        grown = (_dilate(region) & free) | region
        if grown == region:
            return region
        region = grown


def box_score(board: chess.Board) -> int:
    """How far White has got (White to move): a small box first, then close kings, then the edge."""
    if not board.pieces(chess.QUEEN, chess.WHITE) and not board.pieces(chess.ROOK, chess.WHITE):
        return LOST
    wk, bk = board.king(chess.WHITE), board.king(chess.BLACK)
    assert wk is not None and bk is not None
    f, r = chess.square_file(bk), chess.square_rank(bk)
    edge = min(f, 7 - f) + min(r, 7 - r)
    return -10 * chess.popcount(king_region(board)) - 3 * chess.square_distance(wk, bk) - edge


def mate_in_one(board: chess.Board) -> chess.Move | None:
    for move in list(board.legal_moves):
        board.push(move)
        mate = board.is_checkmate()
        board.pop()
        if mate:
            return move
    return None


def mating_move(board: chess.Board, seen: set | frozenset = frozenset()) -> chess.Move:
    """White's move by the box method; ``seen`` holds ``board._transposition_key()`` of earlier positions."""
    mate = mate_in_one(board)
    if mate is not None:
        return mate
    best, best_value = None, None
    for move in list(board.legal_moves):
        board.push(move)
        replies = list(board.legal_moves)
        value = STALEMATE if not replies else None
        for reply in replies:
            board.push(reply)
            v = box_score(board) - (REPEAT_PENALTY if board._transposition_key() in seen else 0)
            board.pop()
            value = v if value is None else min(value, v)
        board.pop()
        if best_value is None or value > best_value:
            best, best_value = move, value
    assert best is not None, "mating_move needs a position with a legal White move"
    return best
