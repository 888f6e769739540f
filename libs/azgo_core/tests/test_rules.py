"""Rules of Go as azgo plays them (Tromp-Taylor): captures, ko and positional superko,
suicide, passes and the move cap, area scoring with komi.

Minigo style: boards are drawn in ASCII ('X' black, 'O' white, '.' empty, row 0 at the
top) and moves are written as GTP vertices (column letters without I, rows counted from
the bottom), converted only through ``azgo_core.coords``.
"""

import numpy as np
import pytest

from azgo_core import coords
from azgo_core.position import BLACK, EMPTY, WHITE, IllegalMove, Position


def board(text, **kwargs):
    return Position.from_ascii(text, **kwargs)


def mv(pos, vertex):
    return coords.from_gtp(pos.size, vertex)


def play(pos, *vertices):
    """Play GTP vertices in turn; return the list of capture counts."""
    return [pos.play(mv(pos, v)) for v in vertices]


def colour_at(pos, vertex):
    return int(pos.stones()[mv(pos, vertex)])


def assert_illegal(pos, vertex, reason):
    move = mv(pos, vertex)
    assert not pos.legal(move), f"{vertex} should be illegal ({reason})"
    assert not pos.legal_mask()[move]
    before = (pos.stones(), pos.to_play, pos.n_moves, list(pos.moves))
    with pytest.raises(IllegalMove) as info:
        pos.play(move)
    assert isinstance(info.value, ValueError)
    assert reason in str(info.value), f"expected {reason!r}, got {info.value}"
    # A refused move changes nothing.
    assert np.array_equal(pos.stones(), before[0])
    assert (pos.to_play, pos.n_moves, pos.moves) == before[1:]


def assert_stones(pos, text):
    assert pos.to_ascii() == board(text).to_ascii(), "\n" + pos.to_ascii()


# --- setup and representation ---------------------------------------------------------


def test_from_ascii_orientation_matches_coords():
    pos = board(
        """
        X....
        .....
        .....
        .....
        ....O
        """
    )
    st = pos.stones()
    assert st.dtype == np.int8 and st.shape == (25,)
    assert st[coords.from_gtp(5, "A5")] == BLACK and st[0] == BLACK
    assert st[coords.from_gtp(5, "E1")] == WHITE and st[24] == WHITE
    assert np.count_nonzero(st) == 2
    assert (BLACK, WHITE, EMPTY) == (1, 2, 0)
    assert pos.to_play == BLACK and pos.n_moves == 0 and pos.passes == 0 and pos.moves == []
    assert board(pos.to_ascii()).to_ascii() == pos.to_ascii()


def test_from_ascii_to_play_and_komi():
    pos = board(".....\n.....\n.....\n.....\n.....", komi=0.5, to_play=WHITE)
    assert pos.to_play == WHITE and pos.komi == 0.5
    pos.play(0)
    assert pos.stones()[0] == WHITE and pos.to_play == BLACK


@pytest.mark.parametrize(
    "text, what",
    [
        ("X....\n.....\n.....\n.....", "square"),
        ("X.Z..\n.....\n.....\n.....\n.....", "Z"),
    ],
)
def test_from_ascii_rejects_bad_boards(text, what):
    with pytest.raises(ValueError, match=what):
        board(text)


@pytest.mark.parametrize(
    "text",
    [
        # a black stone without liberties
        "XO...\nO....\n.....\n.....\n.....",
        # a white stone without liberties
        "OX...\nX....\n.....\n.....\n.....",
        # a two-stone white group without liberties
        "OOX..\nXX...\n.....\n.....\n.....",
    ],
)
def test_from_ascii_rejects_groups_without_liberties(text):
    with pytest.raises(ValueError, match="liberties"):
        board(text)


def test_new_position_defaults():
    pos = Position(size=9)
    assert pos.size == 9 and pos.komi == 7.5 and pos.to_play == BLACK
    assert pos.n_moves == 0 and pos.passes == 0 and not pos.is_over
    assert np.all(pos.stones() == EMPTY)
    assert pos.legal_mask().all()


# --- captures -------------------------------------------------------------------------


def test_single_capture_in_the_middle():
    pos = board(
        """
        .....
        ..X..
        .XO..
        ..X..
        .....
        """
    )
    assert play(pos, "D3") == [1]
    assert colour_at(pos, "C3") == EMPTY
    assert colour_at(pos, "D3") == BLACK
    assert pos.to_play == WHITE


def test_capture_on_the_edge():
    pos = board(
        """
        .XO..
        ..X..
        .....
        .....
        .....
        """
    )
    assert play(pos, "D5") == [1]
    assert colour_at(pos, "C5") == EMPTY


def test_capture_in_the_corner():
    pos = board(
        """
        OX...
        .....
        .....
        .....
        .....
        """
    )
    assert play(pos, "A4") == [1]
    assert colour_at(pos, "A5") == EMPTY


def test_multi_stone_capture_on_the_edge():
    pos = board(
        """
        .XOO.
        ..XX.
        .....
        .....
        .....
        """
    )
    assert play(pos, "E5") == [2]
    assert_stones(
        pos,
        """
        .X..X
        ..XX.
        .....
        .....
        .....
        """,
    )


def test_multi_stone_capture_in_the_corner():
    pos = board(
        """
        OOX..
        O.X..
        XX...
        .....
        .....
        """
    )
    assert play(pos, "B4") == [3]
    assert_stones(
        pos,
        """
        ..X..
        .XX..
        XX...
        .....
        .....
        """,
    )


def test_white_captures_too():
    pos = board(
        """
        .....
        .OXO.
        ..O..
        .....
        .....
        """,
        to_play=WHITE,
    )
    assert play(pos, "C5") == [1]
    assert colour_at(pos, "C4") == EMPTY and colour_at(pos, "C5") == WHITE


def test_one_move_captures_two_groups():
    pos = board(
        """
        .X.X.
        XO.OX
        .X.X.
        .....
        .....
        """
    )
    assert play(pos, "C4") == [2]
    assert colour_at(pos, "B4") == EMPTY and colour_at(pos, "D4") == EMPTY


def test_move_without_liberties_that_captures_four_groups_is_legal():
    # C4 has no empty neighbour: it would be suicide, but it captures all four white stones.
    pos = board(
        """
        .XOX.
        XO.OX
        .XOX.
        ..X..
        .....
        """
    )
    assert pos.legal(mv(pos, "C4"))
    assert play(pos, "C4") == [4]
    assert_stones(
        pos,
        """
        .X.X.
        X.X.X
        .X.X.
        ..X..
        .....
        """,
    )


def test_capture_of_a_large_group():
    pos = board(
        """
        OOOO.
        XXXOX
        ...XX
        .....
        .....
        """
    )
    assert play(pos, "E5") == [5]
    assert_stones(
        pos,
        """
        ....X
        XXX.X
        ...XX
        .....
        .....
        """,
    )
    # The new emptiness is ordinary territory-to-be: white may play inside it again.
    assert pos.legal(mv(pos, "B5"))


def test_snapback():
    pos = board(
        """
        XO..X
        XOOOX
        .XXX.
        .....
        .....
        """
    )
    # Black throws in at C5 (self-atari); white captures at D5; black retakes at C5,
    # capturing the whole white group: not a ko, so it is legal at once.
    assert play(pos, "C5") == [0]
    assert play(pos, "D5") == [1]
    assert colour_at(pos, "C5") == EMPTY
    assert pos.legal(mv(pos, "C5"))
    assert play(pos, "C5") == [5]
    assert_stones(
        pos,
        """
        X.X.X
        X...X
        .XXX.
        .....
        .....
        """,
    )


# --- ko and superko -------------------------------------------------------------------

KO = """
.XO..
XO.O.
.XO..
.....
.....
"""


def test_simple_ko_retake_is_refused_as_superko():
    pos = board(KO)
    assert play(pos, "C4") == [1]  # black takes the ko
    assert colour_at(pos, "B4") == EMPTY
    assert_illegal(pos, "B4", "superko")
    # A ko threat and an answer elsewhere: now white may retake.
    play(pos, "E1", "A1")
    assert pos.legal(mv(pos, "B4"))
    assert play(pos, "B4") == [1]
    assert colour_at(pos, "C4") == EMPTY
    # ... and black may not retake at once.
    assert_illegal(pos, "C4", "superko")


def test_retaking_one_after_two_were_captured_is_legal():
    # Black captures two stones with a stone that is then in atari; white's capture of
    # that one stone at once is not a repetition (the board differs): legal.
    pos = board(
        """
        .OOX.
        OXX..
        .....
        .....
        .....
        """
    )
    assert play(pos, "A5") == [2]
    assert pos.legal(mv(pos, "B5"))
    assert play(pos, "B5") == [1]
    assert_stones(
        pos,
        """
        .O.X.
        OXX..
        .....
        .....
        .....
        """,
    )


def test_ko_retake_after_a_pass_and_an_exchange_is_legal():
    pos = board(KO)
    play(pos, "C4")
    assert pos.legal(coords.pass_move(5))  # pass is always legal, even though nothing changes
    pos.play(coords.pass_move(5))  # white passes: the board repeats, which is fine for a pass
    play(pos, "A1")  # black plays elsewhere
    assert pos.legal(mv(pos, "B4"))  # the retake now makes a new position


TRIPLE_KO = """
.XO...XO.
XO.O.XO.O
.XO...XO.
.........
.OX......
OX.X.....
.OX......
.........
.........
"""


def assert_would_repeat(pos, vertex, earlier_stones):
    """The refused move, played on a copy of the board without history, gives ``earlier_stones``."""
    fresh = board(pos.to_ascii(), to_play=pos.to_play)
    assert fresh.legal(mv(fresh, vertex))  # legal without the game's history ...
    fresh.play(mv(fresh, vertex))
    assert np.array_equal(fresh.stones(), earlier_stones)  # ... because it repeats it


def test_triple_ko_cycle_is_refused():
    # Three kos: black can take ko 1 (C8) and ko 3 (H8), white can take ko 2 (C4).
    # B C8, W C4, B H8, W B8 (retake 1), B B4 (retake 2): every one a new position.
    # W G8 (retake 3) would recreate the starting position, six moves back: it is not an
    # immediate ko recapture (ko 3 was taken three moves ago) but positional superko
    # forbids it.
    pos = board(TRIPLE_KO)
    start = pos.stones()
    for vertex in ["C8", "C4", "H8", "B8", "B4"]:
        assert pos.legal(mv(pos, vertex)), vertex
        assert pos.play(mv(pos, vertex)) == 1, vertex
    assert pos.to_play == WHITE
    assert_illegal(pos, "G8", "superko")
    assert_would_repeat(pos, "G8", start)
    # White may still play elsewhere, or pass.
    assert pos.legal(mv(pos, "E1"))
    assert pos.legal(pos.size**2)


def test_positional_superko_ignores_the_side_to_move():
    # Same triple ko, with one black pass in the cycle: B C8, W C4, B H8, W B8, B pass,
    # W G8 (a retake of ko 3, not immediate). B B4 would then recreate the starting stones
    # with WHITE to move (the start had black to move): situational superko would allow
    # it, positional superko (our rule) refuses it.
    pos = board(TRIPLE_KO)
    for vertex in ["C8", "C4", "H8", "B8", "pass", "G8"]:
        assert pos.legal(mv(pos, vertex)), vertex
        pos.play(mv(pos, vertex))
    assert pos.to_play == BLACK and not pos.is_over
    assert_illegal(pos, "B4", "superko")
    assert_would_repeat(pos, "B4", board(TRIPLE_KO).stones())


# --- suicide and other illegal moves --------------------------------------------------


def test_single_stone_suicide_is_illegal():
    pos = board(
        """
        .X...
        X....
        .....
        .....
        .....
        """,
        to_play=WHITE,
    )
    assert_illegal(pos, "A5", "suicide")
    # For black it is merely filling an own eye: legal.
    pos.play(pos.size**2)
    assert pos.legal(mv(pos, "A5"))


def test_multi_stone_suicide_is_illegal_but_capturing_is_legal():
    pos = board(
        """
        .OX..
        OX...
        X....
        .....
        .....
        """,
        to_play=WHITE,
    )
    # White A5 joins B5 and A4 into a group with no liberties, capturing nothing.
    assert_illegal(pos, "A5", "suicide")
    # Black A5 has no empty neighbour either, but captures both white stones.
    pos.play(pos.size**2)
    assert play(pos, "A5") == [2]
    assert colour_at(pos, "B5") == EMPTY and colour_at(pos, "A4") == EMPTY


def test_suicide_filling_own_last_liberty_of_a_big_group():
    pos = board(
        """
        XXXO.
        X.XO.
        XXXO.
        OOOO.
        .....
        """,
        to_play=BLACK,
    )
    # Black B4 fills the last liberty of its own eight-stone group.
    assert_illegal(pos, "B4", "suicide")
    # White B4 captures eight stones.
    pos.play(pos.size**2)
    assert play(pos, "B4") == [8]


def test_occupied_point_is_illegal():
    pos = board("X....\n.....\n.....\n.....\n....O")
    assert_illegal(pos, "A5", "occupied")
    assert_illegal(pos, "E1", "occupied")


def test_off_board_is_illegal():
    pos = Position(size=5)
    for move in (-1, 26, 1000):
        assert not pos.legal(move)
        with pytest.raises(IllegalMove, match="off board"):
            pos.play(move)


# --- passes, end of game, move cap ----------------------------------------------------


def test_pass_and_two_passes_end_the_game():
    pos = Position(size=5)
    p = coords.pass_move(5)
    pos.play(p)
    assert pos.passes == 1 and not pos.is_over and pos.to_play == WHITE and pos.n_moves == 1
    pos.play(mv(pos, "C3"))
    assert pos.passes == 0 and not pos.is_over
    pos.play(p)
    assert pos.passes == 1 and not pos.is_over
    pos.play(p)
    assert pos.passes == 2 and pos.is_over
    assert pos.moves == [p, mv(pos, "C3"), p, p]
    assert not pos.legal(p)
    assert not pos.legal_mask().any()
    with pytest.raises(IllegalMove, match="game over"):
        pos.play(p)
    with pytest.raises(IllegalMove, match="game over"):
        pos.play(mv(pos, "A1"))


def test_move_cap_ends_the_game():
    pos = Position(size=5, move_cap=4)
    for vertex in ["A1", "B1", "C1", "D1"]:
        assert not pos.is_over
        play(pos, vertex)
    assert pos.n_moves == 4 and pos.is_over and pos.passes == 0
    assert not pos.legal_mask().any()
    with pytest.raises(IllegalMove, match="game over"):
        pos.play(coords.pass_move(5))


def test_default_move_cap_is_two_n_squared():
    # A random 5x5 game that passes only when it has no other legal move keeps capturing
    # and refilling the board; it must stop at exactly 2*N*N = 50 moves.
    rng = np.random.default_rng(7)
    pos = Position(size=5)
    p = coords.pass_move(5)
    while not pos.is_over:
        mask = pos.legal_mask()
        mask[p] = False
        if not mask.any():
            pos.play(p)
            continue
        pos.play(int(rng.choice(np.flatnonzero(mask))))
    assert pos.n_moves == 50, f"stopped after {pos.n_moves} moves, passes={pos.passes}"
    assert pos.passes < 2


# --- scoring --------------------------------------------------------------------------


def test_score_empty_board():
    pos = Position(size=9, komi=7.5)
    assert pos.score() == -7.5
    assert pos.result_string() == "W+7.5"
    assert Position(size=9, komi=0).result_string() == "0"
    assert Position(size=9, komi=0).score() == 0


def test_one_stone_owns_the_board():
    pos = board(".....\n.....\n..X..\n.....\n.....", komi=7.5)
    assert pos.score() == 25 - 7.5
    assert pos.result_string() == "B+17.5"


def test_score_territory_with_eyes():
    pos = board(
        """
        .XO..
        XXO..
        XXO..
        .XO..
        XXO..
        """,
        komi=0,
    )
    # Black: 8 stones + 2 eyes = 10; white: 5 stones + 10 points of territory = 15.
    assert pos.score() == -5
    assert pos.result_string() in ("W+5", "W+5.0")
    pos2 = board(pos.to_ascii(), komi=-5.5)
    assert pos2.score() == 0.5 and pos2.result_string() == "B+0.5"


def test_score_dame_counts_for_no_one():
    pos = board(
        """
        XX.OO
        XX.OO
        XX.OO
        XX.OO
        XX.OO
        """,
        komi=0,
    )
    assert pos.score() == 0
    assert pos.result_string() == "0"
    assert board(pos.to_ascii(), komi=0.5).result_string() == "W+0.5"


SEKI = """
OX.OOX.
OXX.OXX
OOXXOX.
.OOOXXX
O.OX.X.
OOOXXXX
.OOX.X.
"""


def test_seki_is_scored_by_stones_and_exclusive_territory():
    # Black's inner group B7-B6-C6-C5-D5 and white's inner group D7-E7-E6-E5 share the
    # two liberties C7 and D6, have no eyes, and touch nothing else but the opponent's
    # living walls: seki. The shared liberties count for no one.
    # Black: 20 stones + 6 eyes = 26; white: 18 stones + 3 eyes = 21.
    pos = board(SEKI, komi=0)
    st = pos.stones()
    assert np.count_nonzero(st == BLACK) == 20 and np.count_nonzero(st == WHITE) == 18
    assert pos.score() == 5
    assert pos.result_string() in ("B+5", "B+5.0")
    assert board(SEKI, komi=7.5).result_string() == "W+2.5"


INNER_BLACK = ["B7", "B6", "C6", "C5", "D5"]
INNER_WHITE = ["D7", "E7", "E6", "E5"]


@pytest.mark.parametrize(
    "to_play, first, second, victims",
    [
        (BLACK, "C7", "D6", INNER_BLACK + ["C7"]),
        (BLACK, "D6", "C7", INNER_BLACK + ["D6"]),
        (WHITE, "C7", "D6", INNER_WHITE + ["C7"]),
        (WHITE, "D6", "C7", INNER_WHITE + ["D6"]),
    ],
)
def test_seki_whoever_approaches_first_dies(to_play, first, second, victims):
    # Both inner groups are alive: filling a shared liberty is legal (self-atari, not
    # suicide) but lets the opponent capture.
    pos = board(SEKI, komi=0, to_play=to_play)
    assert play(pos, first) == [0]
    assert play(pos, second) == [len(victims)]
    for v in victims:
        assert colour_at(pos, v) == EMPTY


def test_seki_inner_groups_cannot_be_captured_directly():
    for colour in (BLACK, WHITE):
        pos = board(SEKI, komi=0, to_play=colour)
        mask = pos.legal_mask()
        assert mask[mv(pos, "C7")] and mask[mv(pos, "D6")]
        for v in ("C7", "D6"):
            assert pos.copy().play(mv(pos, v)) == 0  # two liberties each: no capture


# --- legal_mask and copy --------------------------------------------------------------


def random_positions(size, count, seed):
    """Positions from random play (occasional passes), each after a random number of moves."""
    rng = np.random.default_rng(seed)
    p = coords.pass_move(size)
    for _ in range(count):
        pos = Position(size=size)
        for _ in range(int(rng.integers(0, 3 * size * size))):
            if pos.is_over:
                break
            mask = pos.legal_mask()
            if rng.random() < 0.03:
                pos.play(p)
                continue
            mask[p] = False
            choices = np.flatnonzero(mask)
            pos.play(int(rng.choice(choices)) if len(choices) else p)
        yield pos


@pytest.mark.parametrize("size", [5, 7, 9])
def test_legal_mask_agrees_with_legal(size):
    checked_illegal_empty = 0
    for pos in random_positions(size, 40, seed=size):
        mask = pos.legal_mask()
        assert mask.dtype == np.bool_ and mask.shape == (size * size + 1,)
        st = pos.stones()
        if pos.is_over:
            assert not mask.any()
        for move in range(size * size + 1):
            assert mask[move] == pos.legal(move), (pos.to_ascii(), move)
            if move < size * size:
                if st[move] != EMPTY:
                    assert not mask[move]
                elif not mask[move] and not pos.is_over:
                    checked_illegal_empty += 1
                    with pytest.raises(IllegalMove, match="suicide|superko"):
                        pos.copy().play(move)
        assert mask[size * size] == (not pos.is_over)
    assert checked_illegal_empty > 0  # the random positions did exercise illegal empty points


def test_copy_is_independent():
    pos = board(KO)
    play(pos, "C4")
    twin = pos.copy()
    # The copy keeps the history: the ko retake is refused there too.
    assert_illegal(twin, "B4", "superko")
    before = (pos.to_ascii(), pos.to_play, pos.n_moves, list(pos.moves), pos.passes)
    play(twin, "E1", "A1", "B4")
    twin.play(coords.pass_move(5))
    assert (pos.to_ascii(), pos.to_play, pos.n_moves, pos.moves, pos.passes) == before
    # ... and the other way round.
    twin_before = (twin.to_ascii(), twin.n_moves, list(twin.moves))
    play(pos, "E2")
    assert (twin.to_ascii(), twin.n_moves, twin.moves) == twin_before
    # The original's history did not learn the copy's positions: a move the copy made
    # remains legal in the original.
    assert pos.legal(mv(pos, "A1"))
    # stones() hands out a copy, not a view into the board.
    st = pos.stones()
    st[:] = WHITE
    assert pos.stones()[mv(pos, "C4")] == BLACK
