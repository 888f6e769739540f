"""Compiled PUCT search over many games at once (AlphaGo Zero / AlphaZero MCTS).

Every game ``g`` owns an arena of preallocated arrays; a step descends each game's tree once
to a leaf, writes the leaf's input planes into a shared batch, and after one network call
expands the leaves and backs their values up. Each tree stays sequential (no virtual loss)
while the network sees one large batch: KataGo's way of batching across games.

Over several cores (``select_chunk``, ``expand_chunk``, driven by ``search.Forest``): a
step's games are disjoint rows of every array, so chunks of them descend and expand on
several threads without the GIL and with no locks. What couples them is fixed on the
calling thread: each game's batch row (a game writes to its own row, then ``pack_rows``
packs the pending ones in ``gids`` order; before the expansions ``pending_slots`` gives
each pending game its row) and the random draws (numba keeps one generator per thread, so
``draw_root_gumbel`` and ``finish_expansions`` draw Gumbel and Dirichlet noise in ``gids``
order). One thread or several, a fixed seed gives the same trees, batches and games.

Tree arrays (``arena.new_tree``: a tuple the kernels index by name, ``tree[EDGE_N]``), per game ``g``:

=============  ===================  ===========================================================
name           shape, dtype         meaning
=============  ===================  ===========================================================
node_first     [G, M] int32         first edge of the node's children
node_count     [G, M] int32         number of children; -1 while the node is not expanded
node_N         [G, M] int32         visits of the node (its expansion included)
node_W         [G, M] float32       sum of values, from the view of the side to move there
edge_move      [G, E] int16         flat move (pass = N*N)
edge_P         [G, E] float32       prior P(s, a), Dirichlet noise mixed in at the root
edge_N         [G, E] int32         visit count N(s, a)
edge_W         [G, E] float32       total value W(s, a), from the view of the side that moves
edge_child     [G, E] int32         node reached by the edge, -1 before its first visit
info           [G, 8] int32         ROOT, NODES, EDGES, PENDING leaf, DEPTH, NOISE flag, draws
=============  ===================  ===========================================================

Board arrays (``arena.new_game_arrays``, ``games[ROOT_BOARD]``), per game: ``root`` and ``leaf`` boards (int32 [G, L]), the
game's superko ``history`` (uint64 [G, Hmax]) with its count and ``bloom`` (uint64 [G, 64]),
the hashes, nodes and edges of the current path (``path_hash``/``path_node``/``path_edge``,
[G, D]), and the stones of the last H positions at the root (``root_stones`` int8
[G, H, N*N], most recent first) and along the path (``path_stones`` int8 [G, H, N*N], a ring
indexed by depth mod H) for the history planes.

Selection maximises ``Q(s,a) + c(s) * P(s,a) * sqrt(sum_b N(s,b)) / (1 + N(s,a))`` with
``c(s) = c_puct + log((1 + sum_b N(s,b) + c_base) / c_base)`` (AlphaZero's pseudocode);
an unvisited child's Q is the parent's Q minus ``fpu_reduction * sqrt(visited prior mass)``
(first-play urgency as in Leela Zero and KataGo).

Passing (``SETTLED_PASS`` on): a node gets a pass child only when the opponent has just
passed or when the board is divided (``board.settled``: every empty region where the side to
move may play touches one colour only, so no dame is left and no dead stone stands
uncaptured). A pass does not end the game, yet searched freely it is valued by the exact
result of the opponent passing back, which the opponent never does: under area scoring a
young network learns that passing is as good as any move, and one colour's early passes take
self-play over. With the rule, games go on until the board is divided, so a result is the
exact Tromp-Taylor score of a finished position.

Gumbel (``ALGORITHM`` = 1, ``gumbel``): the root's child is chosen by Gumbel-Top-k and
Sequential Halving instead of PUCT, with no Dirichlet noise and no tree reuse (each search
starts from a fresh root, so its root visits are exactly its simulations and follow the
halving schedule). Below the root the selection stays PUCT: the paper's gains at few
simulations come from the root (sampling without replacement and the completed-Q target),
PUCT below keeps this module's first-play urgency and pass rule, so an A/B of the two
algorithms differs at the root only, and PUCT needs no per-node network value, which the
arena does not keep.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import board as B
from . import gumbel as GB
from .arena import (
    BLOOM,
    HISTORY,
    INFO,
    LEAF_BOARD,
    NODE_COUNT,
    NODE_N,
    PATH_EDGE,
    PATH_HASH,
    PATH_NODE,
    PATH_STONES,
    ROOT_BOARD,
    ROOT_STONES,
)

ROOT, NODES, EDGES, PENDING, DEPTH, NOISE, DRAWS, NHIST = range(8)

# float parameters, in this order, in the ``params`` vector; ALGORITHM: 0 PUCT, 1 Gumbel
(C_PUCT, C_BASE, FPU_REDUCTION, KOMI, NOISE_FRACTION, NOISE_ALPHA_TOTAL, SETTLED_PASS,
 ALGORITHM, MAX_CONSIDERED, C_VISIT, C_SCALE) = range(11)
NUM_PARAMS = 11
PUCT, GUMBEL = 0, 1




@njit(cache=True)
def reset_tree(tree, g):
    """Drop game ``g``'s tree; the root becomes a fresh unexpanded node."""
    node_first, node_count, node_N, node_W, edge_move, edge_P, edge_N, edge_W, edge_child, info = tree
    info[g, ROOT] = 0
    info[g, NODES] = 1
    info[g, EDGES] = 0
    info[g, PENDING] = -1
    node_count[g, 0] = -1
    node_N[g, 0] = 0
    node_W[g, 0] = 0.0


@njit(cache=True)
def _select_edge(tree, g, n, params):
    """The PUCT-maximising child edge of expanded node ``n``."""
    node_first, node_count, node_N, node_W, edge_move, edge_P, edge_N, edge_W, edge_child, info = tree
    first = node_first[g, n]
    count = node_count[g, n]
    sum_n = node_N[g, n] - 1
    c = params[C_PUCT] + np.log((1.0 + sum_n + params[C_BASE]) / params[C_BASE])
    sqrt_n = np.sqrt(max(sum_n, 1))
    visited_mass = 0.0
    for e in range(first, first + count):
        if edge_N[g, e] > 0:
            visited_mass += edge_P[g, e]
    parent_q = node_W[g, n] / node_N[g, n] if node_N[g, n] > 0 else 0.0
    fpu = parent_q - params[FPU_REDUCTION] * np.sqrt(visited_mass)
    best = first
    best_score = -1e30
    for e in range(first, first + count):
        ne = edge_N[g, e]
        q = edge_W[g, e] / ne if ne > 0 else fpu
        score = q + c * edge_P[g, e] * sqrt_n / (1.0 + ne)
        if score > best_score:
            best_score = score
            best = e
    return best


@njit(cache=True)
def _backup(tree, games, g, leaf, depth, v):
    """Add value ``v`` (side to move at the leaf) along the path; signs alternate upward."""
    node_first, node_count, node_N, node_W, edge_move, edge_P, edge_N, edge_W, edge_child, info = tree
    path_node, path_edge = games[PATH_NODE], games[PATH_EDGE]
    node_N[g, leaf] += 1
    node_W[g, leaf] += v
    for d in range(depth - 1, -1, -1):
        v = -v
        e = path_edge[g, d]
        edge_N[g, e] += 1
        edge_W[g, e] += v
        n = path_node[g, d]
        node_N[g, n] += 1
        node_W[g, n] += v


@njit(cache=True)
def _terminal_value(leaf_board, N, move_cap, komi):
    """The exact result at a finished position, from the side to move's view; 2.0 if not over."""
    base = B.scalar_base((N + 2) * (N + 1))
    if leaf_board[base + B.PASSES] < 2 and leaf_board[base + B.NMOVES] < move_cap:
        return 2.0
    score = B.area_score(leaf_board, N) - komi
    v = 1.0 if score > 0 else (-1.0 if score < 0 else 0.0)
    return v if leaf_board[base + B.TO_PLAY] == B.BLACK else -v


@njit(cache=True)
def _write_planes(games, g, depth, N, H, to_play, out):
    """History planes of the leaf at ``depth`` below the root (see ``features``)."""
    root_stones, path_stones = games[ROOT_STONES], games[PATH_STONES]
    opp = 3 - to_play
    flat = out.reshape(2 * H + 1, N * N)
    for k in range(H):
        if k <= depth - 1:
            src = path_stones[g, (depth - k) % H]
        else:
            src = root_stones[g, k - depth]
        mine = flat[2 * k]
        theirs = flat[2 * k + 1]
        for i in range(N * N):
            v = src[i]
            mine[i] = v == to_play
            theirs[i] = v == opp
    flat[2 * H, :] = 1 if to_play == B.BLACK else 0


@njit(cache=True)
def _descend(tree, games, gum, zob, g, target, params, N, H, move_cap, out):
    """Descend game ``g`` until a non-terminal leaf (its planes into ``out`` [2H+1, N, N]),
    backing terminal leaves up with the exact result on the way, or until its root has
    ``target`` child visits. Returns 1 (a leaf is pending), 0 (none) or -1 (arena full)."""
    node_first, node_count, node_N, node_W, edge_move, edge_P, edge_N, edge_W, edge_child, info = tree
    root_board, leaf_board, path_hash = games[ROOT_BOARD], games[LEAF_BOARD], games[PATH_HASH]
    path_node, path_edge, path_stones = games[PATH_NODE], games[PATH_EDGE], games[PATH_STONES]
    W = N + 1
    P = (N + 2) * W
    base = B.scalar_base(P)
    gumbel_root = params[ALGORITHM] == GUMBEL
    info[g, PENDING] = -1
    while True:
        root = info[g, ROOT]
        if node_count[g, root] >= 0 and node_N[g, root] - 1 >= target:
            return 0
        leaf_board[g, :] = root_board[g, :]
        n = root
        depth = 0
        v = 2.0
        while node_count[g, n] >= 0:
            v = _terminal_value(leaf_board[g], N, move_cap, params[KOMI])
            if v != 2.0:
                break
            if gumbel_root and n == root:
                e = GB.root_edge(tree, gum, g, n, target, int(params[MAX_CONSIDERED]),
                                 params[C_VISIT], params[C_SCALE])
            else:
                e = _select_edge(tree, g, n, params)
            m = edge_move[g, e]
            pad = -1 if m == N * N else (m // N + 1) * W + m % N + 1
            B.play_move(leaf_board[g], N, pad, zob)
            path_node[g, depth] = n
            path_edge[g, depth] = e
            path_hash[g, depth] = B.get_hash(leaf_board[g], P)
            depth += 1
            B.stones_flat(leaf_board[g], N, path_stones[g, depth % H])
            child = edge_child[g, e]
            if child < 0:
                if info[g, NODES] >= node_N.shape[1]:
                    return -1
                child = info[g, NODES]
                info[g, NODES] += 1
                node_count[g, child] = -1
                node_N[g, child] = 0
                node_W[g, child] = 0.0
                edge_child[g, e] = child
            n = child
        if v == 2.0:
            v = _terminal_value(leaf_board[g], N, move_cap, params[KOMI])
        if v != 2.0:
            _backup(tree, games, g, n, depth, v)
            if depth == 0:
                return 0  # the game itself is over: nothing to search
            continue
        info[g, PENDING] = n
        info[g, DEPTH] = depth
        _write_planes(games, g, depth, N, H, leaf_board[g, base + B.TO_PLAY], out)
        return 1


@njit(cache=True)
def select_leaves(tree, games, gum, zob, gids, targets, params, N, H, move_cap, batch):
    """Descend each game in ``gids`` whose root has fewer than ``targets[g]`` child visits.

    Terminal leaves are backed up at once with the exact result; the first non-terminal
    leaf of each game is left pending and its planes go to ``batch[slot]``. Returns the
    number of slots filled. ``batch``: uint8 [B, 2H+1, N, N].
    """
    info = tree[INFO]
    slots = 0
    for gi in range(gids.shape[0]):
        g = gids[gi]
        if slots >= batch.shape[0]:
            info[g, PENDING] = -1
            continue
        status = _descend(tree, games, gum, zob, g, targets[g], params, N, H, move_cap, batch[slots])
        if status < 0:
            raise IndexError("search tree arena is full: more visits than the forest was sized for")
        slots += status
    return slots


@njit(cache=True)
def _draw_root_gumbel(tree, games, gum, g, target, params, N, move_cap):
    """Draw game ``g``'s Gumbel noise now if its next descent would (``GB.root_edge`` at an
    expanded, unfinished root of a search not yet prepared): the parallel kernels draw on
    the calling thread, in ``gids`` order, the same numbers as ``select_leaves``."""
    root = tree[INFO][g, ROOT]
    if (gum[2][g, GB.READY] == 0 and tree[NODE_COUNT][g, root] >= 0 and tree[NODE_N][g, root] - 1 < target
            and _terminal_value(games[ROOT_BOARD][g], N, move_cap, params[KOMI]) == 2.0):
        GB._prepare(tree, gum, g, root, target, int(params[MAX_CONSIDERED]))


@njit(cache=True)
def draw_root_gumbel(tree, games, gum, gids, targets, params, N, move_cap):
    """Before ``select_chunk`` on other threads: draw, in ``gids`` order on this thread, the
    Gumbel noise that ``select_leaves`` would draw during its descents."""
    if params[ALGORITHM] == GUMBEL:
        for gi in range(gids.shape[0]):
            _draw_root_gumbel(tree, games, gum, gids[gi], targets[gids[gi]], params, N, move_cap)


@njit(cache=True, nogil=True)
def select_chunk(tree, games, gum, zob, gids, targets, params, N, H, move_cap, rows, status):
    """The descents of ``gids``, without the GIL: game ``gids[i]`` writes its leaf's planes to
    ``rows[i]`` and its ``_descend`` result to ``status[i]``."""
    for i in range(gids.shape[0]):
        status[i] = _descend(tree, games, gum, zob, gids[i], targets[gids[i]], params, N, H, move_cap, rows[i])


@njit(cache=True)
def pack_rows(status, batch):
    """After every ``select_chunk``: move the rows of games with a pending leaf to the front
    of ``batch``, in ``gids`` order (the rows of ``select_leaves``); returns their number."""
    slots = 0
    for i in range(status.shape[0]):
        if status[i] < 0:
            raise IndexError("search tree arena is full: more visits than the forest was sized for")
        if status[i] == 1:
            if slots != i:
                batch[slots] = batch[i]
            slots += 1
    return slots


@njit(cache=True)
def _apply_noise(tree, g, n, params):
    """Mix Dirichlet noise into the priors of root ``n``: P = (1-eps) P + eps * Dir(alpha)."""
    node_first, node_count, node_N, node_W, edge_move, edge_P, edge_N, edge_W, edge_child, info = tree
    first = node_first[g, n]
    count = node_count[g, n]
    if count <= 0:
        return
    alpha = params[NOISE_ALPHA_TOTAL] / count
    eps = params[NOISE_FRACTION]
    draws = np.empty(count)
    total = 0.0
    for i in range(count):
        draws[i] = np.random.gamma(alpha, 1.0)
        total += draws[i]
    if total <= 0.0:
        return
    for i in range(count):
        edge_P[g, first + i] = (1.0 - eps) * edge_P[g, first + i] + eps * draws[i] / total
    info[g, NOISE] = 0
    info[g, DRAWS] += 1


@njit(cache=True)
def _expand(tree, games, zob, g, params, N, logits, value, mask):
    """Expand game ``g``'s pending leaf with priors softmax(``logits`` [N*N+1]) over its legal
    moves and back ``value`` up. Returns 1 if root noise is now due (``_apply_noise``), 0
    if not, -1 if the arena is full. ``mask``: bool [N*N+1] scratch."""
    node_first, node_count, node_N, node_W, edge_move, edge_P, edge_N, edge_W, edge_child, info = tree
    leaf_board, history, bloom, path_hash = games[LEAF_BOARD], games[HISTORY], games[BLOOM], games[PATH_HASH]
    A = N * N + 1
    n = info[g, PENDING]
    depth = info[g, DEPTH]
    if info[g, EDGES] + A > edge_P.shape[1]:
        return -1
    B.legal_mask(leaf_board[g], N, zob, history[g], info[g, NHIST], bloom[g], path_hash[g], depth, mask)
    if params[SETTLED_PASS] != 0.0:
        mask[A - 1] = pass_allowed(leaf_board[g], N, mask)
    first = info[g, EDGES]
    mx = -1e30
    for a in range(A):
        if mask[a] and logits[a] > mx:
            mx = logits[a]
    total = 0.0
    count = 0
    for a in range(A):
        if mask[a]:
            e = first + count
            p = np.exp(logits[a] - mx)
            edge_move[g, e] = a
            edge_P[g, e] = p
            edge_N[g, e] = 0
            edge_W[g, e] = 0.0
            edge_child[g, e] = -1
            total += p
            count += 1
    for e in range(first, first + count):
        edge_P[g, e] /= total
    node_first[g, n] = first
    node_count[g, n] = count
    info[g, EDGES] += count
    # the backup touches N and W only, so noise mixed into P afterwards gives the same tree
    _backup(tree, games, g, n, depth, value)
    info[g, PENDING] = -1
    return 1 if n == info[g, ROOT] and info[g, NOISE] == 1 else 0


@njit(cache=True)
def expand_and_backup(tree, games, zob, gids, params, N, logits, values):
    """Expand every pending leaf with the network's priors (softmax over the legal moves of
    ``logits`` [B, N*N+1]) and back its value ``values`` [B] (side to move's view) up."""
    info = tree[INFO]
    mask = np.empty(N * N + 1, dtype=np.bool_)
    slot = 0
    for gi in range(gids.shape[0]):
        g = gids[gi]
        if info[g, PENDING] < 0:
            continue
        status = _expand(tree, games, zob, g, params, N, logits[slot], values[slot], mask)
        if status < 0:
            raise IndexError("search tree arena is full: more visits than the forest was sized for")
        if status == 1:
            _apply_noise(tree, g, info[g, ROOT], params)
        slot += 1


@njit(cache=True)
def pending_slots(tree, gids, slot_of):
    """Before ``expand_chunk``: each game's batch row (the pending ones in ``gids`` order, -1
    for the others) into ``slot_of``; returns the number of rows."""
    info = tree[INFO]
    slots = 0
    for gi in range(gids.shape[0]):
        slot_of[gi] = -1
        if info[gids[gi], PENDING] >= 0:
            slot_of[gi] = slots
            slots += 1
    return slots


@njit(cache=True, nogil=True)
def expand_chunk(tree, games, zob, gids, params, N, logits, values, slot_of, status):
    """The expansions and backups of ``gids``, without the GIL: game ``gids[i]`` takes row
    ``slot_of[i]`` of ``logits``/``values`` (none if -1); its ``_expand`` result to ``status[i]``."""
    mask = np.empty(N * N + 1, dtype=np.bool_)
    for i in range(gids.shape[0]):
        status[i] = 0
        if slot_of[i] >= 0:
            status[i] = _expand(tree, games, zob, gids[i], params, N, logits[slot_of[i]], values[slot_of[i]], mask)


@njit(cache=True)
def finish_expansions(tree, gids, params, status):
    """After every ``expand_chunk``: Dirichlet noise where due, drawn on this thread in ``gids``
    order as ``expand_and_backup`` draws it."""
    info = tree[INFO]
    for gi in range(gids.shape[0]):
        if status[gi] < 0:
            raise IndexError("search tree arena is full: more visits than the forest was sized for")
        if status[gi] == 1:
            _apply_noise(tree, gids[gi], info[gids[gi], ROOT], params)


@njit(cache=True)
def pass_allowed(s, N, legal):
    """The pass rule of ``SETTLED_PASS``: after the opponent's pass, or on a settled board."""
    if s[B.scalar_base((N + 2) * (N + 1)) + B.PASSES] > 0:
        return True
    return B.settled(s, N, legal)


@njit(cache=True)
def start_move(tree, gum, g, params, noise):
    """Begin a move's search. PUCT: Dirichlet noise is drawn once, now if the reused root is
    expanded, else right after the root's expansion. Gumbel: a fresh root (a search's root
    visits are its simulations), Gumbel noise g(a) when ``noise``, drawn at the first root
    selection."""
    node_count, info = tree[NODE_COUNT], tree[INFO]
    if params[ALGORITHM] == GUMBEL:
        if node_count[g, info[g, ROOT]] >= 0:
            reset_tree(tree, g)
        info[g, NOISE] = 0
        GB.start_search(gum, g, noise)
        return
    info[g, NOISE] = 1 if noise else 0
    if noise and node_count[g, info[g, ROOT]] >= 0:
        _apply_noise(tree, g, info[g, ROOT], params)


@njit(cache=True)
def compact(tree, scratch, g, new_root):
    """Keep only the subtree under ``new_root`` (tree reuse), copied to the arena's start in
    breadth-first order through the one-game ``scratch`` arena."""
    node_first, node_count, node_N, node_W, edge_move, edge_P, edge_N, edge_W, edge_child, info = tree
    s_first, s_count, s_N, s_W, s_move, s_P, s_EN, s_EW, s_child, _ = scratch
    queue = np.empty(info[g, NODES], dtype=np.int32)
    queue[0] = new_root
    head = 0
    tail = 1
    edges = 0
    while head < tail:
        old = queue[head]
        s_count[0, head] = node_count[g, old]
        s_N[0, head] = node_N[g, old]
        s_W[0, head] = node_W[g, old]
        count = node_count[g, old]
        if count > 0:
            s_first[0, head] = edges
            f = node_first[g, old]
            for i in range(count):
                s_move[0, edges + i] = edge_move[g, f + i]
                s_P[0, edges + i] = edge_P[g, f + i]
                s_EN[0, edges + i] = edge_N[g, f + i]
                s_EW[0, edges + i] = edge_W[g, f + i]
                c = edge_child[g, f + i]
                if c >= 0:
                    queue[tail] = c
                    s_child[0, edges + i] = tail
                    tail += 1
                else:
                    s_child[0, edges + i] = -1
            edges += count
        head += 1
    node_first[g, :tail] = s_first[0, :tail]
    node_count[g, :tail] = s_count[0, :tail]
    node_N[g, :tail] = s_N[0, :tail]
    node_W[g, :tail] = s_W[0, :tail]
    edge_move[g, :edges] = s_move[0, :edges]
    edge_P[g, :edges] = s_P[0, :edges]
    edge_N[g, :edges] = s_EN[0, :edges]
    edge_W[g, :edges] = s_EW[0, :edges]
    edge_child[g, :edges] = s_child[0, :edges]
    info[g, ROOT] = 0
    info[g, NODES] = tail
    info[g, EDGES] = edges
    info[g, PENDING] = -1


@njit(cache=True)
def play_at_root(tree, games, scratch, zob, g, move, N, H, reuse):
    """Play ``move`` (flat) in game ``g``: update the board, superko history and history
    planes, and keep the chosen child's subtree when ``reuse``."""
    node_first, node_count, node_N, node_W, edge_move, edge_P, edge_N, edge_W, edge_child, info = tree
    root_board, history, bloom, root_stones = games[ROOT_BOARD], games[HISTORY], games[BLOOM], games[ROOT_STONES]
    W = N + 1
    P = (N + 2) * W
    pad = -1 if move == N * N else (move // N + 1) * W + move % N + 1
    B.play_move(root_board[g], N, pad, zob)
    h = B.get_hash(root_board[g], P)
    history[g, info[g, NHIST]] = h
    info[g, NHIST] += 1
    B.bloom_add(bloom[g], h)
    for k in range(H - 1, 0, -1):
        root_stones[g, k, :] = root_stones[g, k - 1, :]
    B.stones_flat(root_board[g], N, root_stones[g, 0])
    child = -1
    root = info[g, ROOT]
    if reuse and node_count[g, root] > 0:
        f = node_first[g, root]
        for e in range(f, f + node_count[g, root]):
            if edge_move[g, e] == move:
                child = edge_child[g, e]
    if child >= 0 and node_count[g, child] >= 0:
        compact(tree, scratch, g, child)
    else:
        reset_tree(tree, g)


@njit(cache=True)
def seed_noise(seed):
    """Seed numba's generator (used for the Dirichlet and Gumbel draws)."""
    np.random.seed(seed)
