"""Coordinate conversions: flat <-> GTP <-> SGF round trips, pass, and bad input."""

import pytest

from azgo_core import coords
from azgo_core.coords import CoordinateError

SIZES = range(5, 20)


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_every_point(size):
    seen_gtp, seen_sgf = set(), set()
    for move in range(size * size):
        gtp = coords.to_gtp(size, move)
        sgf = coords.to_sgf(size, move)
        assert "I" not in gtp.upper(), gtp
        assert coords.from_gtp(size, gtp) == move
        assert coords.from_gtp(size, gtp.lower()) == move
        assert coords.from_sgf(size, sgf) == move
        row, col = coords.from_flat(size, move)
        assert coords.to_flat(size, row, col) == move
        assert coords.from_padded(size, coords.to_padded(size, move)) == move
        seen_gtp.add(gtp)
        seen_sgf.add(sgf)
    # Injective: every point has its own name in both notations.
    assert len(seen_gtp) == len(seen_sgf) == size * size


@pytest.mark.parametrize("size", SIZES)
def test_orientation(size):
    n = size
    # Row 0 is the top: GTP counts rows from the bottom, SGF from the top.
    assert coords.to_gtp(n, 0) == f"A{n}"
    assert coords.to_gtp(n, n - 1) == f"{coords.GTP_COLUMNS[n - 1]}{n}"
    assert coords.to_gtp(n, n * (n - 1)) == "A1"
    assert coords.to_sgf(n, 0) == "aa"
    assert coords.to_sgf(n, n - 1) == coords.SGF_LETTERS[n - 1] + "a"  # column letter first
    assert coords.to_sgf(n, n * (n - 1)) == "a" + coords.SGF_LETTERS[n - 1]
    assert coords.from_flat(n, n + 2) == (1, 2)


def test_gtp_columns_skip_i():
    assert coords.to_gtp(9, 7) == "H9"
    assert coords.to_gtp(9, 8) == "J9"
    assert coords.to_gtp(19, 18) == "T19"
    assert coords.from_gtp(19, "J10") == 9 * 19 + 8
    with pytest.raises(CoordinateError, match="I5"):
        coords.from_gtp(19, "I5")


@pytest.mark.parametrize("size", SIZES)
def test_pass(size):
    p = size * size
    assert coords.pass_move(size) == p
    assert coords.num_actions(size) == p + 1
    assert coords.to_gtp(size, p) == "pass"
    for text in ("pass", "PASS", "Pass", " pass "):
        assert coords.from_gtp(size, text) == p
    assert coords.to_sgf(size, p) == ""
    assert coords.from_sgf(size, "") == p
    assert coords.from_flat(size, p) is None
    assert coords.to_padded(size, p) == -1


def test_sgf_tt_is_pass_on_small_boards():
    assert coords.from_sgf(9, "tt") == 81
    assert coords.from_sgf(19, "tt") == 361


@pytest.mark.parametrize(
    "size, vertex",
    [
        (9, "K9"),  # column past the board (9x9 ends at J)
        (9, "A10"),
        (9, "A0"),
        (9, "A-1"),
        (9, "Z1"),
        (9, "A"),
        (9, ""),
        (9, "11"),
        (9, "AA1"),
        (9, "passs"),
        (19, "U1"),
        (19, "I1"),
        (5, "F5"),
        (5, "E6"),
        # GTP is ASCII: other Unicode digits are not row numbers
        (9, "A\u00b2"),  # superscript two
        (9, "A\u0663"),  # Arabic-Indic three
    ],
)
def test_bad_gtp_vertex(size, vertex):
    with pytest.raises(CoordinateError) as info:
        coords.from_gtp(size, vertex)
    assert repr(vertex) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("size, point", [(9, "ja"), (9, "aj"), (9, "a"), (9, "abc"), (9, "AA"), (5, "ff"), (9, "a1")])
def test_bad_sgf_point(size, point):
    with pytest.raises(CoordinateError) as info:
        coords.from_sgf(size, point)
    assert repr(point) in str(info.value)


@pytest.mark.parametrize("size, move", [(9, -1), (9, 82), (5, 26), (19, 1000)])
def test_bad_flat(size, move):
    for fn in (coords.from_flat, coords.to_gtp, coords.to_sgf, coords.to_padded):
        with pytest.raises(CoordinateError) as info:
            fn(size, move)
        assert str(move) in str(info.value)


def test_bad_row_col():
    for row, col in [(-1, 0), (0, -1), (9, 0), (0, 9)]:
        with pytest.raises(CoordinateError):
            coords.to_flat(9, row, col)


def test_padded_layout():
    n = 9
    # One border row above and below, one shared border column: stride N+1.
    assert coords.to_padded(n, 0) == (n + 1) + 1
    assert coords.to_padded(n, n * n - 1) == n * (n + 1) + n
    with pytest.raises(CoordinateError):
        coords.from_padded(n, 0)  # the top border row is not on the board
    with pytest.raises(CoordinateError):
        coords.from_padded(n, 2 * (n + 1))  # the shared border column


def test_check_size():
    for size in SIZES:
        assert coords.check_size(size) == size
    for bad in (4, 20, 0, -9, 9.0, "9", None):
        with pytest.raises(CoordinateError) as info:
            coords.check_size(bad)
        assert repr(bad) in str(info.value)
