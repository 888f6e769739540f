"""SGF (FF[4]) export of game records, and a small reader of main-line moves.

An exported game looks like::

    (;FF[4]GM[1]CA[UTF-8]AP[azgo:0.1.0]SZ[9]KM[7.5]RU[Tromp-Taylor]RE[W+4.5]
    PB[azgo-000123]PW[azgo-000123]C[...]
    ;B[ee]C[root value +0.031, 600 visits];W[de]...;B[];W[])

Root properties:

====  =============================================================================
FF    4; GM 1 (Go); CA UTF-8
AP    ``azgo:<code_version>`` (composed: a ':' in the version is escaped)
SZ    board size N;  KM komi
RU    the record's rules; 'tromp-taylor' is written ``Tromp-Taylor`` (area scoring, no
      dead-stone removal, positional superko). GNU Go 3.8 ignores RU whatever it says
      and sgfmill keeps it as plain text.
RE    ``GameRecord.result_string()``: 'B+R', 'W+3.5', '0' (draw), 'Void' (unfinished)
PB/PW ``azgo-000123``: the model generation, zero-padded to 6 digits so names sort
DT    the date, when given
C     provenance: generation, worker, seed, code version
====  =============================================================================

Moves: black first, colours alternate (self-play has no handicap), ``B[]``/``W[]`` is a
pass. Points are converted with ``coords.to_sgf`` / ``coords.from_sgf`` only.
"""

from __future__ import annotations

import datetime
import math

from azgo_core import coords
from azgo_core.records import GameRecord, format_points

_SGF_RULES = {"tromp-taylor": "Tromp-Taylor"}
_MOVES_PER_LINE = 10


class SgfError(ValueError):
    """SGF text that cannot be read as a plain game of alternating moves."""


def player_name(generation: int) -> str:
    """The SGF player name of a model generation: ``azgo-000123``."""
    return f"azgo-{generation:06d}"


def _text(value: str) -> str:
    """Escape an SGF Text/SimpleText value."""
    return value.replace("\\", "\\\\").replace("]", "\\]")


def _composed(value: str) -> str:
    """Escape one half of an SGF composed value (``a:b``)."""
    return _text(value).replace(":", "\\:")


def to_sgf(
    record: GameRecord,
    black_name: str | None = None,
    white_name: str | None = None,
    *,
    date: str | datetime.date | None = None,
    comments: bool = True,
    about: str | None = None,
    result: str | None = None,
) -> str:
    """The record as an SGF FF[4] game; players default to the record's model generation.

    With ``comments`` each move carries its root search: the value (side to move's view),
    total visits, and whether it was a fast (playout-capped) search. ``about`` replaces the
    root comment (written even without ``comments``: a match says who played how);
    ``result`` replaces RE (a forfeit, ``W+F``, which a record cannot express).
    """
    n = record.board_size
    black = player_name(record.model_generation) if black_name is None else black_name
    white = player_name(record.model_generation) if white_name is None else white_name
    rules = _SGF_RULES.get(record.rules, record.rules)
    root = (
        f"FF[4]GM[1]CA[UTF-8]AP[azgo:{_composed(record.code_version or 'unknown')}]"
        f"SZ[{n}]KM[{format_points(record.komi)}]RU[{_text(rules)}]RE[{_text(result or record.result_string())}]"
        f"\nPB[{_text(black)}]PW[{_text(white)}]"
    )
    if date is not None:
        root += f"DT[{_text(date.isoformat() if isinstance(date, datetime.date) else date)}]"
    if comments and about is None:
        about = (
            f"azgo self-play, model generation {record.model_generation}, worker {record.worker_id or '?'}, "
            f"seed {record.seed}, code {record.code_version or '?'}, rules {record.rules}"
        )
    if about is not None:
        root += f"C[{_text(about)}]"

    nodes = []
    for t, move in enumerate(record.moves):
        node = f";{'BW'[t % 2]}[{coords.to_sgf(n, int(move))}]"
        if comments:
            node += f"C[{_move_comment(record, t)}]"
        nodes.append(node)
    lines = [root] + ["".join(nodes[i : i + _MOVES_PER_LINE]) for i in range(0, len(nodes), _MOVES_PER_LINE)]
    return "(;" + "\n".join(lines) + ")\n"


def _move_comment(record: GameRecord, t: int) -> str:
    value = float(record.root_values[t])
    visits = int(record.visits_at(t)[1].sum())
    parts = [] if math.isnan(value) else [f"root value {value:+.3f}"]
    parts.append(f"{visits} visits" + ("" if record.full_search[t] else " (fast)"))
    return ", ".join(parts)


def from_sgf_moves(text: str | bytes) -> tuple[int, float, list[int], str]:
    """(board size, komi, flat moves, result or '') of an SGF game's main line.

    Refuses what a list of alternating moves cannot express: setup stones, white moving
    first, two moves in a row by one colour.
    """
    from sgfmill import sgf  # imported here: only tools and tests read SGF

    try:
        game = sgf.Sgf_game.from_bytes(text) if isinstance(text, bytes) else sgf.Sgf_game.from_string(text)
        size = coords.check_size(game.get_size())
        komi = game.get_komi()
    except ValueError as e:
        raise SgfError(f"not a readable SGF game: {e}") from None
    root = game.get_root()
    moves: list[int] = []
    for i, node in enumerate(game.get_main_sequence()):
        setup = [p for p in ("AB", "AW", "AE") if node.has_property(p)]
        if setup:
            raise SgfError(f"node {i}: setup properties {setup} are not supported")
        played = [p for p in ("B", "W") if node.has_property(p)]
        if not played:
            continue
        expected = "BW"[len(moves) % 2]
        if played != [expected]:
            raise SgfError(f"node {i}: expected a move by {expected}, found {played}")
        point = node.get_raw(expected).decode("ascii", errors="replace")
        try:
            moves.append(coords.from_sgf(size, point))
        except coords.CoordinateError as e:
            raise SgfError(f"node {i}: {e}") from None
    result = root.get("RE") if root.has_property("RE") else ""
    return size, komi, moves, result
