"""Coordinate conversion: the only place in azgo that converts between notations.

Glossary (board of size N, rows counted from the top):

=============  ======================  =========================================
notation       example on 9x9          meaning
=============  ======================  =========================================
(row, col)     (0, 0)                  row 0 is the top edge, col 0 the left edge
flat           0 .. N*N-1, pass = N*N  ``row * N + col``; what records, policies
                                       and the network use
GTP vertex     ``A9``, ``J1``, ``pass``  column letter (A..T, no I), row number
                                       counted from the bottom
SGF point      ``aa``, ``ii``, ``""``  column letter then row letter, both from
                                       the top-left; pass is the empty string
padded         (row+1)*(N+1) + col+1   the compiled board's index (one border
                                       row above and below, one shared border
                                       column); see ``azgo_core.board``
=============  ======================  =========================================
"""

from __future__ import annotations

GTP_COLUMNS = "ABCDEFGHJKLMNOPQRSTUVWXYZ"  # GTP skips the letter I
SGF_LETTERS = "abcdefghijklmnopqrstuvwxyz"
MIN_SIZE = 5
MAX_SIZE = 19


class CoordinateError(ValueError):
    """A vertex, point or index that does not exist on the board."""


def check_size(size: int) -> int:
    """Return ``size`` if it is a supported square board size, else raise."""
    if not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise CoordinateError(f"board size must be an integer from {MIN_SIZE} to {MAX_SIZE}, got {size!r}")
    return size


def pass_move(size: int) -> int:
    """The flat index of a pass: ``N*N``."""
    return size * size


def num_actions(size: int) -> int:
    """Number of moves a policy covers: every point plus pass."""
    return size * size + 1


def to_flat(size: int, row: int, col: int) -> int:
    if not (0 <= row < size and 0 <= col < size):
        raise CoordinateError(f"(row {row}, col {col}) is off a {size}x{size} board")
    return row * size + col


def from_flat(size: int, move: int) -> tuple[int, int] | None:
    """(row, col) of a flat index, or None for a pass."""
    if isinstance(move, float) or not hasattr(move, "__index__"):
        raise CoordinateError(f"move index {move!r} is not an integer")
    if move == size * size:
        return None
    if not 0 <= move < size * size:
        raise CoordinateError(f"move index {move} is off a {size}x{size} board (pass is {size * size})")
    return divmod(int(move), size)


def to_gtp(size: int, move: int) -> str:
    rc = from_flat(size, move)
    if rc is None:
        return "pass"
    row, col = rc
    return f"{GTP_COLUMNS[col]}{size - row}"


def from_gtp(size: int, vertex: str) -> int:
    """Flat index of a GTP vertex (case-insensitive); ``pass`` gives N*N."""
    text = vertex.strip().upper()
    if text == "PASS":
        return size * size
    if len(text) < 2 or text[0] not in GTP_COLUMNS[:size] or not (text[1:].isascii() and text[1:].isdigit()):
        raise CoordinateError(f"{vertex!r} is not a vertex on a {size}x{size} board")
    col = GTP_COLUMNS.index(text[0])
    row = size - int(text[1:])
    if not 0 <= row < size:
        raise CoordinateError(f"{vertex!r} is not a vertex on a {size}x{size} board")
    return row * size + col


def to_sgf(size: int, move: int) -> str:
    rc = from_flat(size, move)
    if rc is None:
        return ""
    row, col = rc
    return SGF_LETTERS[col] + SGF_LETTERS[row]


def from_sgf(size: int, point: str) -> int:
    """Flat index of an SGF point; the empty string (and ``tt`` on boards up to 19) is a pass."""
    if point == "" or (point == "tt" and size <= 19):
        return size * size
    if len(point) != 2 or point[0] not in SGF_LETTERS[:size] or point[1] not in SGF_LETTERS[:size]:
        raise CoordinateError(f"{point!r} is not an SGF point on a {size}x{size} board")
    return SGF_LETTERS.index(point[1]) * size + SGF_LETTERS.index(point[0])


def to_padded(size: int, move: int) -> int:
    """Padded index used by the compiled board (pass stays a pass: returns -1)."""
    rc = from_flat(size, move)
    if rc is None:
        return -1
    row, col = rc
    return (row + 1) * (size + 1) + col + 1


def from_padded(size: int, point: int) -> int:
    row, col = divmod(int(point), size + 1)
    return to_flat(size, row - 1, col - 1)
