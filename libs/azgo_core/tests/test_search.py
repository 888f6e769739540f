"""PUCT search (``azgo_core.search`` over the compiled ``azgo_core.mcts``): it finds the only
winning capture of small hand-made positions, counts its visits exactly, draws root noise
once per move, reuses subtrees, respects its capacity and never lets a move repeat a
position of the game or of the path below the root (positional superko).

Minigo style: boards are drawn in ASCII ('X' black, 'O' white, '.' empty, row 0 at the
top) and moves are written as GTP vertices, converted only through ``azgo_core.coords``.
Every "only winning move" is checked by brute force (a full minimax to the move cap, with
``Position`` copies) in the test itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from azgo_core import board as B
from azgo_core import coords, mcts
from azgo_core.position import BLACK, WHITE, Position
from azgo_core.search import Forest, MctsPlayer, SearchConfig, uniform_evaluator


def board(text, **kwargs):
    return Position.from_ascii(text, **kwargs)


def mv(pos, vertex):
    return coords.from_gtp(pos.size, vertex)


def vertex(pos, move):
    return coords.to_gtp(pos.size, int(move))


def play(pos, *vertices):
    for v in vertices:
        pos.play(mv(pos, v))
    return pos


def after(pos, move):
    q = pos.copy()
    q.play(int(move))
    return q


# --- evaluators -------------------------------------------------------------------------


def position_from_planes(planes, komi):
    """The stones and side to move of the newest position in ``planes`` (no history)."""
    n = planes.shape[-1]
    black_to_move = bool(planes[-1, 0, 0])
    mine, theirs = planes[0].astype(bool), planes[1].astype(bool)
    black, white = (mine, theirs) if black_to_move else (theirs, mine)
    rows = ["".join("X" if black[r, c] else "O" if white[r, c] else "." for c in range(n)) for r in range(n)]
    return board("\n".join(rows), komi=komi, to_play=BLACK if black_to_move else WHITE)


def result_evaluator(komi):
    """Uniform priors; value = sign of the Tromp-Taylor score of the leaf as it stands, from
    the side to move's view (the true result wherever the game would end now)."""

    def evaluate(planes):
        values = np.zeros(len(planes), np.float32)
        for i, p in enumerate(planes):
            pos = position_from_planes(p, komi)
            s = np.sign(pos.score())
            values[i] = s if pos.to_play == BLACK else -s
        return np.zeros((len(planes), planes.shape[-1] ** 2 + 1), np.float32), values

    return evaluate


def random_evaluator(seed):
    """Random logits and values in (-1, 1): a search that is anything but uniform."""
    rng = np.random.default_rng(seed)

    def evaluate(planes):
        b, a = len(planes), planes.shape[-1] ** 2 + 1
        return rng.normal(0, 2, (b, a)).astype(np.float32), np.tanh(rng.normal(0, 1, b)).astype(np.float32)

    return evaluate


class Recording:
    """Wraps an evaluator and keeps a copy of every batch it was given."""

    def __init__(self, evaluate):
        self.evaluate = evaluate
        self.batches = []

    def __call__(self, planes):
        self.batches.append(planes.copy())
        return self.evaluate(planes)

    @property
    def rows(self):
        return np.concatenate(self.batches) if self.batches else np.zeros((0,))


def test_result_evaluator_reads_the_score_from_the_planes():
    text = """
        XX.O.
        X.XO.
        XXXOO
        OOO..
        .....
        """
    for to_play in (BLACK, WHITE):
        pos = board(text, komi=0.5, to_play=to_play)
        assert pos.score() == (7 + 1) - (7 + 9) - 0.5  # stones + territory (C5 touches both)
        planes = pos.planes(8)[None]
        _, value = result_evaluator(0.5)(planes)
        assert value[0] == (-1 if to_play == BLACK else 1)
        back = position_from_planes(planes[0], 0.5)
        assert back.to_ascii() == pos.to_ascii() and back.to_play == to_play


# --- brute force --------------------------------------------------------------------------


def solve(pos):
    """Exact minimax result to the move cap: +1 win, 0 draw, -1 loss for the side to move."""
    if pos.is_over:
        s = np.sign(pos.score())
        return int(s if pos.to_play == BLACK else -s)
    best = -1
    for m in np.flatnonzero(pos.legal_mask()):
        best = max(best, -solve(after(pos, m)))
        if best == 1:
            break
    return best


def winning_moves(pos):
    return [int(m) for m in np.flatnonzero(pos.legal_mask()) if solve(after(pos, m)) == -1]


# --- finding the only winning move ----------------------------------------------------

# Each position ends after ``move_cap`` moves (counted from the setup) and has exactly one
# winning move, a capture; the brute force below checks that before the search runs.
SHARED_LIBERTY_5X5 = """
OOOX.
XXOX.
.OOXX
XXXX.
...X.
"""
SHARED_LIBERTY_SETUP = dict(komi=10.5, move_cap=3, to_play=BLACK)

CAPTURE_POSITIONS = [
    pytest.param(
        SHARED_LIBERTY_5X5,
        SHARED_LIBERTY_SETUP,
        "A3",
        # capturing race on a shared liberty: A3 takes six stones, anything else lets white
        # take the two black stones at A4/B4 and keep the corner
        id="5x5-black-shared-liberty",
    ),
    pytest.param(
        """
        XXXO.
        OOXO.
        .XXOO
        OOOOO
        .X.X.
        """,
        dict(komi=-4.5, move_cap=3, to_play=WHITE),
        "A3",
        # the same race with the colours swapped (reverse komi) and two black stones below
        id="5x5-white-shared-liberty",
    ),
    pytest.param(
        """
        XXXXO..
        XOOXO..
        XO.XO..
        XXXXOOO
        OOOOXXX
        ...OX.X
        ...OXX.
        """,
        dict(komi=0.5, move_cap=2, to_play=WHITE),
        "C5",
        # white's three stones and black's twelve share their last liberty C5
        id="7x7-white-semeai",
    ),
    pytest.param(
        """
        OOOOX.O
        OXXOX.X
        OX.OX..
        OOOOXXX
        XXXXOOO
        ...XO.O
        ...XOO.
        """,
        dict(komi=7.5, move_cap=3, to_play=BLACK),
        "C5",
        # the decoy F7 captures G7 and wins back the top-right corner, but not the game
        id="7x7-black-semeai-with-decoy",
    ),
]


@pytest.mark.parametrize("text, setup, winner", CAPTURE_POSITIONS)
def test_position_has_exactly_one_winning_move(text, setup, winner):
    pos = board(text, **setup)
    assert pos.to_play == setup["to_play"] and pos.n_moves == 0 and pos.move_cap == setup["move_cap"]
    assert winning_moves(pos) == [mv(pos, winner)]
    assert after(pos, mv(pos, winner)).stones().tolist().count(0) > pos.stones().tolist().count(0), "not a capture"
    assert solve(after(pos, pos.size * pos.size)) == 1, "passing should lose"


@pytest.mark.parametrize("evaluator", ["uniform", "result"])
@pytest.mark.parametrize("text, setup, winner", CAPTURE_POSITIONS)
def test_search_finds_the_only_winning_capture(text, setup, winner, evaluator):
    pos = board(text, **setup)
    evaluate = uniform_evaluator if evaluator == "uniform" else result_evaluator(pos.komi)
    player = MctsPlayer(evaluate, visits=300)
    assert vertex(pos, player.genmove(pos)) == winner
    moves, counts, value = player.analyse(pos)
    assert counts.sum() == 300
    best = int(moves[np.argmax(counts)])
    assert vertex(pos, best) == winner
    assert counts.max() > 0.5 * counts.sum(), dict(zip([vertex(pos, m) for m in moves], counts.tolist()))
    assert value > 0.5  # the side to move wins
    # the search left the position alone
    assert pos.n_moves == 0 and pos.moves == []


# --- visit accounting -----------------------------------------------------------------


def midgame_7x7():
    pos = Position(7, komi=7.5)
    return play(pos, "D4", "C5", "E5", "C3", "D6", "E3", "pass", "B4")


VISIT_POSITIONS = {
    "empty-5x5": lambda: Position(5),
    "midgame-7x7": midgame_7x7,
    "near-terminal-5x5": lambda: board(SHARED_LIBERTY_5X5, **SHARED_LIBERTY_SETUP),  # leaves at depth 3 are final
    "one-pass-played": lambda: play(Position(5, move_cap=6), "C3", "pass"),
}


@pytest.mark.parametrize("visits", [1, 2, 5, 26, 64, 300])
@pytest.mark.parametrize("name", sorted(VISIT_POSITIONS))
def test_root_child_visits_sum_to_the_visits_asked(name, visits):
    pos = VISIT_POSITIONS[name]()
    for evaluate in (uniform_evaluator, random_evaluator(visits)):
        moves, counts, value = MctsPlayer(evaluate, visits=visits).analyse(pos)
        assert counts.sum() == visits
        assert (counts > 0).all() and len(set(moves.tolist())) == len(moves)
        assert set(moves.tolist()) <= set(np.flatnonzero(pos.legal_mask()).tolist())
        assert -1.0 <= value <= 1.0


def test_each_game_of_a_forest_stops_at_its_own_target():
    cfg = SearchConfig(visits=60, cheap_visits=60)
    f = Forest(3, 5, cfg, komi=0.5)
    targets = [5, 17, 60]
    for g, t in enumerate(targets):
        f.start(g, t, noise=False)
    evaluated = f.search(np.arange(3), uniform_evaluator)
    assert [int(f.root_visits(g)[1].sum()) for g in range(3)] == targets
    assert evaluated == sum(targets) + 3  # one root expansion each, no terminal node this early
    assert len(f.pending(np.arange(3))) == 0


# --- root noise -------------------------------------------------------------------------


def legal_moves(pos):
    """The children the search gives ``pos``: the legal moves, the pass only as ``mcts``'s pass
    rule allows (after the opponent's pass, or once the board is divided)."""
    mask = pos.legal_mask()
    if pos.passes == 0 and not B.settled(pos.state, pos.size, mask):
        mask[-1] = False
    return np.flatnonzero(mask)


def test_the_pass_is_searched_only_after_a_pass_or_on_a_settled_board():
    f = Forest(1, 5, SearchConfig(visits=30, cheap_visits=30))
    open_board = board("""
        . . . . .
        . X . . .
        . . . O .
        . . . . .
        . . . . .""")
    settled_board = board("""
        . X O . O
        X X O O O
        . X O . O
        X X O O O
        . X O . O""")
    after_pass = play(open_board.copy(), "pass")
    for pos, pass_searched in ((open_board, False), (settled_board, True), (after_pass, True)):
        f.load(0, pos)
        f.start(0, 30, noise=False)
        f.search(np.array([0]), uniform_evaluator)
        moves, _ = f.root_priors(0)
        assert (25 in moves) == pass_searched, pos.to_ascii()
        assert np.array_equal(moves, legal_moves(pos))
    # black's only legal points on the settled board fill its own eyes; white's too
    assert legal_moves(settled_board).tolist() == [0, 10, 20, 25]
    # divided, with territory to spare: passing is allowed, and so is filling or invading
    assert 25 in legal_moves(board("""
        . . X O .
        . . X O .
        . . X O .
        . . X O .
        . . X O ."""))
    for still_open in ("""
        . . X O .
        . . X O .
        . . . O .
        . . X O .
        . . X O .""", """
        . . X O .
        . O X O .
        . . X O .
        . . X O .
        . . X O ."""):  # a dame point; a dead white stone not yet captured
        assert 25 not in legal_moves(board(still_open)), still_open
    free = Forest(1, 5, SearchConfig(visits=30, cheap_visits=30, settled_pass=False))
    free.load(0, open_board)
    free.start(0, 30, noise=False)
    free.search(np.array([0]), uniform_evaluator)
    assert 25 in free.root_priors(0)[0]  # the rule off: the pass is searched like any move


def test_root_noise_is_drawn_once_per_move_and_stays_fixed():
    cfg = SearchConfig(visits=40, cheap_visits=40, noise_fraction=0.25, noise_alpha_total=3.0)
    mcts.seed_noise(7)
    f = Forest(1, 5, cfg, komi=0.5)
    pos = Position(5, komi=0.5)
    gid = np.array([0])
    assert f.noise_draws(0) == 0

    # a fresh root: the noise comes with its expansion
    f.start(0, 40, noise=True)
    assert f.noise_draws(0) == 0
    f.step(gid, uniform_evaluator)
    assert f.noise_draws(0) == 1
    moves, priors = f.root_priors(0)
    assert np.array_equal(moves, legal_moves(pos))
    assert priors.sum() == pytest.approx(1.0, abs=1e-5)
    uniform = np.full(len(moves), 1.0 / len(moves), np.float32)
    assert not np.allclose(priors, uniform, atol=1e-3)
    assert (priors >= 0.75 * uniform - 1e-7).all()  # (1 - eps) P + eps * noise
    for _ in range(5):
        f.step(gid, uniform_evaluator)
    assert np.array_equal(f.root_priors(0)[1], priors)
    f.search(gid, uniform_evaluator)
    assert np.array_equal(f.root_priors(0)[1], priors)
    assert f.noise_draws(0) == 1

    # moves without noise draw nothing; their root keeps the network's priors
    for move_number in range(3):
        moves, counts = f.root_visits(0)
        m = int(moves[np.argmax(counts)])
        f.play(0, m)
        pos.play(m)
        f.start(0, 40, noise=False)
        f.search(gid, uniform_evaluator)
        assert f.noise_draws(0) == 1
        moves, p = f.root_priors(0)
        assert np.allclose(p, 1.0 / len(moves)), move_number

    # a reused (already expanded) root gets its noise at start, once
    moves, counts = f.root_visits(0)
    m = int(moves[np.argmax(counts)])
    f.play(0, m)
    pos.play(m)
    moves, before = f.root_priors(0)
    assert len(moves) > 0 and np.allclose(before, 1.0 / len(moves))  # reused, network priors
    f.start(0, 40, noise=True)
    assert f.noise_draws(0) == 2
    noised = f.root_priors(0)[1]
    assert not np.allclose(noised, before, atol=1e-3)
    f.search(gid, uniform_evaluator)
    assert f.noise_draws(0) == 2
    assert np.array_equal(f.root_priors(0)[1], noised)
    assert f.root_visits(0)[1].sum() >= 40


def test_noise_draws_count_per_game():
    cfg = SearchConfig(visits=8, cheap_visits=8)
    f = Forest(3, 5, cfg, komi=0.5, move_cap=20)
    gids = np.arange(3)
    noise = [True, False, True]
    expected = np.zeros(3, int)
    for move in range(6):
        for g in gids:
            f.start(g, 8, noise=noise[g] and move % 2 == 0)
            expected[g] += noise[g] and move % 2 == 0
        f.search(gids, uniform_evaluator)
        assert [f.noise_draws(g) for g in gids] == expected.tolist()
        for g in gids:
            moves, counts = f.root_visits(g)
            f.play(g, int(moves[np.argmax(counts)]))
    assert expected.tolist() == [3, 0, 3]


# --- tree reuse -------------------------------------------------------------------------


def walk(f, g, root_pos):
    """(node, Position, depth) of every expanded node of game ``g``'s tree, replayed from the root."""
    node_first, node_count = f.tree[0], f.tree[1]
    edge_move, edge_child = f.tree[4], f.tree[8]
    stack = [(int(f.info[g, mcts.ROOT]), root_pos.copy(), 0)]
    while stack:
        n, pos, depth = stack.pop()
        if node_count[g, n] < 0:
            continue
        yield n, pos, depth
        first = node_first[g, n]
        for e in range(first, first + node_count[g, n]):
            if edge_child[g, e] >= 0:
                stack.append((int(edge_child[g, e]), after(pos, edge_move[g, e]), depth + 1))


def edges(f, g, n):
    first, count = f.tree[0][g, n], f.tree[1][g, n]
    return f.tree[4][g, first:first + count].astype(int)


@pytest.mark.parametrize("size", [5, 7])
def test_reused_root_keeps_the_chosen_child(size):
    cfg = SearchConfig(visits=60, cheap_visits=60, reuse_tree=True)
    f = Forest(1, size, cfg, komi=7.5)
    node_N, edge_N = f.tree[2], f.tree[6]
    pos = Position(size, komi=7.5)
    f.load(0, pos)
    gid = np.array([0])
    rng = np.random.default_rng(size)
    evaluate = random_evaluator(size)
    reused = 0
    for _ in range(12):
        f.start(0, 60, noise=False)
        f.search(gid, evaluate)
        moves, counts = f.root_visits(0)
        m = int(rng.choice(moves, p=counts / counts.sum()))
        child_n = int(counts[list(moves).index(m)])
        f.play(0, m)
        pos.play(m)
        root = f.info[0, mcts.ROOT]
        if pos.is_over:
            break
        # a visited child is expanded unless the game ends there: it is always kept
        assert f.tree[1][0, root] >= 0
        reused += 1
        assert node_N[0, root] == child_n
        first, count = f.tree[0][0, root], f.tree[1][0, root]
        assert edge_N[0, first:first + count].sum() == child_n - 1
        assert np.array_equal(edges(f, 0, root), legal_moves(pos))
        # every node of the kept subtree still has exactly the legal moves of its position
        for n, p, _ in walk(f, 0, pos):
            assert np.array_equal(edges(f, 0, n), legal_moves(p))
        # the next search tops the reused visits up to the target, no further
        f.start(0, 60, noise=False)
        f.search(gid, evaluate)
        assert f.root_visits(0)[1].sum() == max(60, child_n - 1)
    assert reused >= 8


def test_without_reuse_every_move_starts_from_an_empty_tree():
    cfg = SearchConfig(visits=50, cheap_visits=50, reuse_tree=False)
    f = Forest(1, 5, cfg, komi=0.5)
    gid = np.array([0])
    for _ in range(5):
        f.start(0, 50, noise=False)
        f.search(gid, uniform_evaluator)
        moves, counts = f.root_visits(0)
        assert counts.sum() == 50
        f.play(0, int(moves[np.argmax(counts)]))
        root = f.info[0, mcts.ROOT]
        assert f.tree[1][0, root] == -1 and f.tree[2][0, root] == 0
        assert f.info[0, mcts.NODES] == 1 and f.info[0, mcts.EDGES] == 0
        assert len(f.root_visits(0)[0]) == 0


# --- capacity -----------------------------------------------------------------------------


def test_start_above_capacity_names_the_limit():
    f = Forest(2, 5, SearchConfig(visits=30, cheap_visits=10))
    assert f.max_visits == 30
    for bad in (31, 1000, 0, -1):
        with pytest.raises(ValueError, match=r"1\.\.30\b.*" + str(bad)):
            f.start(0, bad, noise=False)
    g = Forest(1, 5, SearchConfig(visits=30, cheap_visits=10), max_visits=12)
    with pytest.raises(ValueError, match=r"1\.\.12\b"):
        g.start(0, 13, noise=False)
    g.start(0, 12, noise=False)


def test_full_searches_with_reuse_fit_the_arena():
    """Searches at the forest's limit, each on top of a reused subtree, never overflow."""
    cfg = SearchConfig(visits=40, cheap_visits=40)
    f = Forest(1, 5, cfg, komi=0.5)
    pos = Position(5, komi=0.5)
    gid = np.array([0])
    evaluate = random_evaluator(3)
    while not pos.is_over:
        f.start(0, f.max_visits, noise=True)
        f.search(gid, evaluate)  # would raise IndexError on overflow
        assert f.info[0, mcts.NODES] <= f.tree[2].shape[1]
        moves, counts = f.root_visits(0)
        m = int(moves[np.argmax(counts)])
        f.play(0, m)
        pos.play(m)
    assert pos.n_moves > 10


# --- superko inside the tree --------------------------------------------------------------

KO = """
.OX.X
OX.XX
.OXX.
OOOXX
..OX.
"""


def test_ko_recapture_below_the_root_repeats_a_path_position():
    """After any black move elsewhere, white takes the ko at C4; black's retake at B4 would
    recreate the position after black's first move, which exists only inside the tree."""
    pos = board(KO, komi=0.5)
    p1 = play(pos.copy(), "E3")
    p2 = play(p1.copy(), "C4")
    assert p2.stones()[mv(pos, "B4")] == 0  # white took the ko
    assert p2.why_illegal(mv(pos, "B4")) == "superko"
    on_board = board(p2.to_ascii(), komi=0.5, to_play=BLACK)  # the same stones, no history
    assert on_board.legal(mv(pos, "B4"))
    assert after(on_board, mv(pos, "B4")).to_ascii() == p1.to_ascii()


def test_search_tree_never_holds_a_superko_edge():
    pos = board(KO, komi=0.5)
    player = MctsPlayer(uniform_evaluator, visits=800)
    player.analyse(pos)
    f = player.forest
    ko_nodes = 0
    nodes = 0
    for n, p, depth in walk(f, 0, pos):
        nodes += 1
        assert np.array_equal(edges(f, 0, n), legal_moves(p)), (depth, p.moves)
        if depth == 2 and p.moves[1] == mv(pos, "C4") and p.moves[0] != pos.size * pos.size:
            b4 = mv(pos, "B4")
            if board(p.to_ascii(), komi=0.5, to_play=BLACK).legal(b4) and p.why_illegal(b4) == "superko":
                ko_nodes += 1
                assert b4 not in edges(f, 0, n)
    assert nodes > 100
    assert ko_nodes >= 2  # several black first moves were followed by white's ko capture


def test_search_planes_match_the_positions_of_the_tree():
    """Every evaluated leaf got the planes of its own position, history included (H=3, deeper
    paths than H so the path ring wraps, and a root with real game history)."""
    pos = play(board(KO, komi=0.5), "E1", "A1", "D5", "B1")
    cfg = SearchConfig(visits=400, cheap_visits=400, history=3)
    rec = Recording(uniform_evaluator)
    player = MctsPlayer(rec, visits=400, config=cfg)
    player.analyse(pos)
    got = sorted(row.tobytes() for row in rec.rows)
    want, depths = [], []
    for _, p, depth in walk(player.forest, 0, pos):
        want.append(p.planes(3).tobytes())
        depths.append(depth)
    assert max(depths) > 3
    assert rec.rows.shape[1:] == (7, 5, 5)
    assert got == sorted(want)
