"""Gumbel AlphaZero's root (Danihelka, Guez, Schrittwieser, Silver, ICLR 2022), compiled for
the forest of ``mcts``.

At the root of each search, for each legal root action a (the root's child edges):

- Gumbel-Top-k: draw g(a) ~ Gumbel(0, 1) and consider the m = min(max_considered, legal)
  actions with the largest g(a) + logits(a);
- Sequential Halving: split the simulations into ceil(log2 m) phases; a phase visits each
  remaining action equally, then keeps the better half by g(a) + logits(a) + sigma(q̂(a));
- the move played is the remaining action (most visited) with the largest
  g(a) + logits(a) + sigma(q̂(a)); the policy target is the completed-Q improved policy
  pi' = softmax(logits + sigma(completedQ)).

Both phases fall out of one rule (mctx's ``seq_halving``): the ``schedule`` gives, for the
k-th root simulation, the visit count an action must have to be visited now; the root visits
the best such action by g + logits + sigma(q̂). With schedule 0 for the first m simulations,
the unvisited actions all share one completed Q, so they are taken in g + logits order: the
top m. Below the root, plain PUCT (``mcts._select_edge``) is used, see ``mcts``.

Values: Q(a) = W(a) / N(a) from the root mover's view; an unvisited action's completed Q is
the mixed value v_mix = (v + sum_b N(b) * sum_{N(b)>0} P(b) Q(b) / sum_{N(b)>0} P(b)) / (1 + sum_b N(b))
(mctx's ``_compute_mixed_value``), v being the network's value of the root, recovered as the
root's W minus its children's W. Go values lie in [-1, 1], so q̂ = (Q + 1) / 2 uses those
known bounds (MuZero's ``KnownBounds`` for board games) rather than mctx's min-max over the
node, which would blow a difference of 0.001 up to the whole [0, 1] range.
sigma(q̂) = (c_visit + max_b N(b)) * c_scale * q̂.

Arrays (``gum`` tuple), per game g, beside the ``mcts`` tree:

==========  ================  =================================================================
name        shape, dtype      meaning
==========  ================  =================================================================
gumbel_g    [G, A] float32    g(a) of the root's i-th child edge; 0 where no noise is drawn
schedule    [G, V+1] int32    visit count an action needs to be visited at root simulation k
state       [G, 4] int32      READY (noise and schedule made for this search), NOISE (draw g),
                              M (actions considered), LENGTH (of the schedule)
==========  ================  =================================================================
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .arena import EDGE_N, EDGE_P, EDGE_W, NODE_COUNT, NODE_FIRST, NODE_N

READY, NOISE, M, LENGTH = range(4)

_TINY = 1e-30  # log P of a prior that underflowed: a very unlikely, still legal action


def make_arrays(games: int, actions: int, max_visits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empty ``gum`` arrays for ``games`` games of ``actions`` moves and ``max_visits`` visits."""
    return (np.zeros((games, actions), np.float32), np.zeros((games, max_visits + 1), np.int32),
            np.zeros((games, 4), np.int32))


@njit(cache=True)
def sequential_halving(m, n, out):
    """The considered-visit schedule of ``n`` simulations over ``m`` actions into ``out`` [>= n].

    Phase by phase (ceil(log2 m) of them, the last one repeated while simulations remain), each
    of the ``r`` remaining actions gets max(1, n // (ceil(log2 m) * r)) visits; then the better
    half stays (never fewer than 2). ``out[k]`` is the visit count an action must have to be
    picked at simulation k (mctx's ``get_sequence_of_considered_visits``). Returns ``n``.
    """
    if m <= 1:
        for k in range(n):
            out[k] = k
        return n
    log2m = 0
    while (1 << log2m) < m:
        log2m += 1
    visits = 0  # every remaining action has this many visits at a phase's start
    r = m
    k = 0
    while k < n:
        extra = max(1, n // (log2m * r))
        for _ in range(extra):
            for _i in range(r):
                if k < n:
                    out[k] = visits
                    k += 1
            visits += 1
        r = max(2, r // 2)
    return n


@njit(cache=True)
def start_search(gum, g, noise):
    """A new search of game ``g``: noise and schedule are made at its first root selection."""
    state = gum[2]
    state[g, READY] = 0
    state[g, NOISE] = 1 if noise else 0


@njit(cache=True)
def _prepare(tree, gum, g, root, target, max_considered):
    """Draw g(a) (or zeros) for the expanded root's children and build the schedule."""
    node_count = tree[NODE_COUNT]
    gumbel_g, schedule, state = gum
    count = node_count[g, root]
    for i in range(count):
        gumbel_g[g, i] = np.random.gumbel(0.0, 1.0) if state[g, NOISE] == 1 else 0.0
    m = min(max_considered, count)
    n = min(target, schedule.shape[1])
    state[g, M] = m
    state[g, LENGTH] = sequential_halving(m, n, schedule[g])
    state[g, READY] = 1


@njit(cache=True)
def _root_stats(tree, g, root):
    """(v_mix, max_b N(b), sum_b N(b)) of the expanded root: one pass over its children."""
    node_first, node_count, node_N, node_W, edge_move, edge_P, edge_N, edge_W, edge_child, info = tree
    first = node_first[g, root]
    count = node_count[g, root]
    sum_n = 0
    max_n = 0
    sum_w = 0.0
    visited_p = 0.0
    visited_pq = 0.0
    for e in range(first, first + count):
        ne = edge_N[g, e]
        sum_n += ne
        max_n = max(max_n, ne)
        sum_w += edge_W[g, e]
        if ne > 0:
            p = max(edge_P[g, e], _TINY)
            visited_p += p
            visited_pq += p * edge_W[g, e] / ne
    v = node_W[g, root] - sum_w  # the network's value: the root's first backup
    v = min(1.0, max(-1.0, v))
    v_mix = v if sum_n == 0 else (v + sum_n * visited_pq / visited_p) / (1.0 + sum_n)
    return v_mix, max_n, sum_n


@njit(cache=True)
def _sigma(tree, g, e, v_mix, scale):
    """sigma(q̂) of child edge ``e``: its Q, or v_mix unvisited, mapped from [-1, 1] to [0, 1]."""
    edge_N, edge_W = tree[EDGE_N], tree[EDGE_W]
    q = edge_W[g, e] / edge_N[g, e] if edge_N[g, e] > 0 else v_mix
    return scale * (q + 1.0) * 0.5


@njit(cache=True)
def sigma_completed_q(tree, g, root, c_visit, c_scale, out):
    """sigma(q̂(a)) of the root's completed Q values into ``out`` [count]; returns max_b N(b)."""
    first = tree[NODE_FIRST][g, root]
    v_mix, max_n, _ = _root_stats(tree, g, root)
    scale = (c_visit + max_n) * c_scale
    for i in range(tree[NODE_COUNT][g, root]):
        out[i] = _sigma(tree, g, first + i, v_mix, scale)
    return max_n


@njit(cache=True)
def _best_with_visits(tree, gum, g, root, wanted, c_visit, c_scale):
    """The child edge with N(a) == ``wanted`` maximising g(a) + log P(a) + sigma(q̂(a)); -1 if
    none. ``wanted`` < 0: the most visited children."""
    node_first, node_count = tree[NODE_FIRST], tree[NODE_COUNT]
    edge_P, edge_N = tree[EDGE_P], tree[EDGE_N]
    gumbel_g = gum[0]
    first = node_first[g, root]
    v_mix, max_n, _ = _root_stats(tree, g, root)
    if wanted < 0:
        wanted = max_n
    scale = (c_visit + max_n) * c_scale
    best = -1
    best_score = -np.inf
    for i in range(node_count[g, root]):
        e = first + i
        if edge_N[g, e] != wanted:
            continue
        score = gumbel_g[g, i] + math.log(max(edge_P[g, e], _TINY)) + _sigma(tree, g, e, v_mix, scale)
        if score > best_score:
            best_score = score
            best = e
    return best


@njit(cache=True)
def root_edge(tree, gum, g, root, target, max_considered, c_visit, c_scale):
    """The root child edge the next simulation of game ``g`` visits (Sequential Halving)."""
    schedule, state = gum[1], gum[2]
    if state[g, READY] == 0:
        _prepare(tree, gum, g, root, target, max_considered)
    k = tree[NODE_N][g, root] - 1  # this simulation's index: the root's child visits so far
    e = -1
    if k < state[g, LENGTH]:
        e = _best_with_visits(tree, gum, g, root, schedule[g, k], c_visit, c_scale)
    if e < 0:  # the schedule cannot be followed (a search asked beyond its length): most visited
        e = _best_with_visits(tree, gum, g, root, -1, c_visit, c_scale)
    return e


@njit(cache=True)
def chosen_edge(tree, gum, g, root, c_visit, c_scale):
    """The move of a finished search: among the most visited root children (the actions left
    by Sequential Halving), the largest g(a) + log P(a) + sigma(q̂(a)); -1 if unexpanded."""
    if tree[NODE_COUNT][g, root] <= 0:
        return -1
    return _best_with_visits(tree, gum, g, root, -1, c_visit, c_scale)


@njit(cache=True)
def improved_policy(tree, g, root, c_visit, c_scale, out):
    """pi' = softmax(log P + sigma(completedQ)) over the root's children into ``out`` [count]."""
    node_first, node_count, edge_P = tree[NODE_FIRST], tree[NODE_COUNT], tree[EDGE_P]
    first = node_first[g, root]
    count = node_count[g, root]
    sigma = np.empty(count, np.float64)
    sigma_completed_q(tree, g, root, c_visit, c_scale, sigma)
    mx = -np.inf
    for i in range(count):
        out[i] = math.log(max(edge_P[g, first + i], _TINY)) + sigma[i]
        mx = max(mx, out[i])
    total = 0.0
    for i in range(count):
        out[i] = math.exp(out[i] - mx)
        total += out[i]
    for i in range(count):
        out[i] /= total
