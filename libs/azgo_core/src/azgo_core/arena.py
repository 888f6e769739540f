"""The arrays of a forest of search trees: one tuple for the trees, one for the boards.

``mcts`` and ``gumbel`` take them as plain tuples of numpy arrays and read them by the index
names below (``tree[EDGE_N]``, ``games[ROOT_BOARD]``): a named tuple would read as well, but
numba types one at every call for about 0.8 us more than a plain tuple, 3% of the runner's
time at 64 games. The shapes and meanings are ``mcts``'s tables.
"""

from __future__ import annotations

import numpy as np

from . import board as B

# the tree tuple: G games, M nodes and E edges each
(NODE_FIRST,   # int32 [G, M]: first edge of the node's children
 NODE_COUNT,   # int32 [G, M]: number of children, -1 while not expanded
 NODE_N,       # int32 [G, M]: visits of the node
 NODE_W,       # float32 [G, M]: sum of values, side to move's view
 EDGE_MOVE,    # int16 [G, E]: flat move (pass = N*N)
 EDGE_P,       # float32 [G, E]: prior P(s, a)
 EDGE_N,       # int32 [G, E]: visit count N(s, a)
 EDGE_W,       # float32 [G, E]: total value W(s, a), view of the side that moves
 EDGE_CHILD,   # int32 [G, E]: node reached, -1 before its first visit
 INFO,         # int32 [G, 8]: mcts.ROOT, NODES, EDGES, PENDING, DEPTH, NOISE, DRAWS, NHIST
 ) = range(10)

# the board tuple: G games, paths of at most D moves, H history planes
(ROOT_BOARD,   # int32 [G, L]: board.state_length(N)
 LEAF_BOARD,   # int32 [G, L]
 HISTORY,      # uint64 [G, D + 1]: superko hashes of the game (INFO NHIST of them)
 BLOOM,        # uint64 [G, board.BLOOM_WORDS]
 PATH_HASH,    # uint64 [G, D]
 PATH_NODE,    # int32 [G, D]
 PATH_EDGE,    # int32 [G, D]
 ROOT_STONES,  # int8 [G, H, N*N]: most recent first
 PATH_STONES,  # int8 [G, H, N*N]: a ring indexed by depth mod H
 ) = range(9)


def new_tree(G: int, M: int, E: int) -> tuple[np.ndarray, ...]:
    """Empty trees for G games of at most M nodes and E edges."""
    return (np.zeros((G, M), np.int32), np.full((G, M), -1, np.int32),
            np.zeros((G, M), np.int32), np.zeros((G, M), np.float32),
            np.zeros((G, E), np.int16), np.zeros((G, E), np.float32),
            np.zeros((G, E), np.int32), np.zeros((G, E), np.float32),
            np.full((G, E), -1, np.int32), np.zeros((G, 8), np.int32))


def new_game_arrays(G: int, N: int, H: int, D: int) -> tuple[np.ndarray, ...]:
    """Board arrays for G games on N x N with H history planes and paths of at most D moves."""
    L = B.state_length(N)
    return (np.zeros((G, L), np.int32), np.zeros((G, L), np.int32),
            np.zeros((G, D + 1), np.uint64), np.zeros((G, B.BLOOM_WORDS), np.uint64),
            np.zeros((G, D), np.uint64), np.zeros((G, D), np.int32), np.zeros((G, D), np.int32),
            np.zeros((G, H, N * N), np.int8), np.zeros((G, H, N * N), np.int8))
