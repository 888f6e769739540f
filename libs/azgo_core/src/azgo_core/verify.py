"""What a game record claims, checked against a replay of its moves: the broker's definition of a true record.

``records.GameRecord`` checks a record's shape (types, ranges, lengths). A record of legal
shape can still lie about the game, and a few percent of wrong results poison a value head.
``check_record`` replays the moves with ``Position`` (Tromp-Taylor: area scoring with the
record's komi, suicide illegal, positional superko, the game over after two passes in a row
or at the move cap of 2*N*N, the only cap self-play uses) and refuses, with a
``RecordError`` naming the move and what is false:

- a move that is illegal where it was played (occupied, suicide, superko, after the end);
- the visits of move t (the search of the position before it): a child that was not a legal
  move there (occupied, suicide, superko; pass is always legal), a child listed twice, a total
  above ``records.MAX_VISITS`` (2**20; each count is bounded so by ``GameRecord``), a full
  search (``full_search``: a policy target) with a total of 0, and a played move that is not
  among the children with a count of at least 1 when the move lists any (a move drawn from
  its search was visited; a Gumbel policy gives the played move a weight of at least 1);
- a result the final position does not give: a game that ended (two passes or the move cap)
  must carry the counted score, ``area - komi``, and not a resignation (its winner then
  follows from the score: ``GameRecord`` ties the two); a resigned game must not have ended,
  and its winner is the side that did not resign, which is the side *not* to move after the
  last recorded move (a side resigns instead of moving); a game neither ended nor resigned has
  no result and is refused (its winner 0 would teach a draw).

``records.RULES`` is the only rules string a record may carry, so these are its rules.
``batchcheck`` makes the same decision compiled; the tests hold the two against each other.
"""

from __future__ import annotations

import math

import numpy as np

from . import coords
from .position import IllegalMove, Position
from .records import BLACK, MAX_VISITS, WHITE, GameRecord, RecordError, format_points

COLOUR = {BLACK: "black", WHITE: "white", 0: "nobody"}


def check_record(record: GameRecord) -> None:
    """Raise ``RecordError`` if a move, a search's visits or the result is false (see the module docstring).

    Messages start with ``move t: `` (1-based) for a move or its visits."""
    n = record.board_size
    position = Position(n, record.komi)
    full = record.full_search
    for t, move in enumerate(record.moves.tolist()):
        reason = position.why_illegal(move)
        if reason is not None:
            raise RecordError(f"move {t + 1}: {IllegalMove(move, reason, n)}")
        children, counts = record.visits_at(t)
        _check_visits(t, position, move, children, counts, bool(full[t]))
        position.play(move)
    _check_result(record, position)


def _check_visits(t: int, position: Position, move: int, children: np.ndarray, counts: np.ndarray,
                  full: bool) -> None:
    """The search before move ``t``: legal children, each once, bounded total, the played move visited."""
    n = position.size
    total = int(counts.sum(dtype=np.int64))
    if full and total == 0:
        raise RecordError(f"move {t + 1}: a full search (a policy target) with no visits")
    if total > MAX_VISITS:
        raise RecordError(f"move {t + 1}: {total} visits in all, above the limit of {MAX_VISITS}")
    if not len(children):
        return
    kids = children.astype(np.int64)
    legal = position.legal_mask()
    if not legal[kids].all():
        bad = int(kids[~legal[kids]][0])
        raise RecordError(f"move {t + 1}: visits on {coords.to_gtp(n, bad)}, which was not a legal move there "
                          f"({position.why_illegal(bad)})")
    ordered = np.sort(kids)
    twice = ordered[1:][ordered[1:] == ordered[:-1]]
    if len(twice):
        raise RecordError(f"move {t + 1}: child {coords.to_gtp(n, int(twice[0]))} listed more than once")
    if not (counts[kids == move] > 0).any():
        raise RecordError(f"move {t + 1}: played {coords.to_gtp(n, move)}, which its search never visited")


def _check_result(record: GameRecord, position: Position) -> None:
    """Winner, score and resignation against the final position."""
    ended = "two passes" if position.passes >= 2 else f"the move cap ({position.move_cap} moves)"
    if record.resigned:
        if position.is_over:
            raise RecordError(f"claims a resignation, but the game ended by {ended}")
        loser = position.to_play
        if record.winner != 3 - loser:
            raise RecordError(f"{COLOUR[record.winner]} claimed to win by resignation, but {COLOUR[loser]} was to "
                              f"move after move {position.n_moves}: only {COLOUR[3 - loser]} can have won so")
        return
    if not position.is_over:
        raise RecordError(f"no result: the game neither ended (two passes or {position.move_cap} moves) nor was "
                          f"resigned after {position.n_moves} moves")
    if math.isnan(record.score):
        raise RecordError(f"the game ended by {ended} but claims no counted score")
    board = position.score()
    if record.score != board:
        raise RecordError(f"score {format_points(record.score)} claimed, board gives {format_points(board)} "
                          f"(area {position.area()}, komi {format_points(record.komi)})")
