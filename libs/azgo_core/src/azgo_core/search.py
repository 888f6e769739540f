"""Search settings, the arrays behind a forest of game trees, and a single-game player.

``Forest`` owns the preallocated arrays of ``mcts`` for G games and runs the batched loop:
select a leaf in every game, one network call for all of them, expand and back up. An
evaluator is any callable ``evaluate(planes uint8 [B, C, N, N]) -> (logits float32 [B, A],
value float32 [B])`` with values from the side to move's view (``model.make_evaluator``,
or ``uniform_evaluator`` for tests and benchmarks).

Two root algorithms (``SearchConfig.algorithm``), batched in the same compiled forest:
``puct`` (AlphaZero: Dirichlet noise, visit counts as the policy target, moves drawn
~ N^(1/T)) and ``gumbel`` (Gumbel AlphaZero, ``gumbel``: Gumbel-Top-k and Sequential Halving
at the root, the move is the halving's winner, the policy target is the completed-Q improved
policy pi', see ``Forest.root_policy_target``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from . import arena, chunkpool, coords, gumbel, mcts
from . import board as B
from .features import num_planes
from .params import SearchConfig
from .position import Position, zobrist

_NO_PATH = np.zeros(1, dtype=np.uint64)

POLICY_TARGET_TOTAL = 1000
"""The integer weights a quantised pi' sums to (``quantise_policy``). Per-mille: the error of
one action's probability is at most 0.0005, below what a network's policy resolves; actions
under 0.05% drop out (a mild form of KataGo's policy target pruning), which keeps a record's
entries per move near the number of plausible moves; the counts read like those of a
1000-playout search and stay far below the records' 2**20 bound on a move's total."""

# The network as the search calls it: planes uint8 [B, C, N, N] -> (logits f32 [B, N*N+1], value f32 [B])
# (azgo_core.model.make_evaluator wraps a torch net; tests pass stubs).
Evaluator = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def kernel_params(config: SearchConfig, komi: float) -> np.ndarray:
    """The compiled kernels' scalar parameters (``mcts.NUM_PARAMS`` float64) of a search at ``komi``."""
    p = np.zeros(mcts.NUM_PARAMS, dtype=np.float64)
    p[mcts.C_PUCT] = config.c_puct
    p[mcts.C_BASE] = config.c_base
    p[mcts.FPU_REDUCTION] = config.fpu_reduction
    p[mcts.KOMI] = komi
    p[mcts.NOISE_FRACTION] = config.noise_fraction
    p[mcts.NOISE_ALPHA_TOTAL] = config.noise_alpha_total
    p[mcts.SETTLED_PASS] = 1.0 if config.settled_pass else 0.0
    p[mcts.ALGORITHM] = mcts.GUMBEL if config.gumbel else mcts.PUCT
    p[mcts.MAX_CONSIDERED] = config.max_considered
    p[mcts.C_VISIT] = config.c_visit
    p[mcts.C_SCALE] = config.c_scale
    return p





def search_threads(asked: int) -> int:
    """Threads of a forest's compiled kernels: ``asked``, 0 meaning every core this process may use."""
    if asked < 0:
        raise ValueError(f"search threads must be >= 0, got {asked}")
    return asked or len(os.sched_getaffinity(0))


def uniform_evaluator(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Uniform priors and value 0: the stub network of tests and benchmarks."""
    n = planes.shape[-1]
    b = planes.shape[0]
    return np.zeros((b, n * n + 1), dtype=np.float32), np.zeros(b, dtype=np.float32)


class Forest:
    """Trees, boards and histories of ``games`` games of one board size, in compiled arrays.

    ``threads`` > 1 runs a step's descents and expansions over chunks of the games on that
    many threads (``chunkpool``, ``mcts.select_chunk``): the same trees, batches and random
    draws as one thread, for a fixed seed (``search_threads``: 0 = every usable core).

    ``overlap`` pipelines the search and the network over two halves of a step's games:
    while the network evaluates half A's leaves on a thread of its own (torch releases the
    GIL), the kernels descend half B's (they release it too), then expand A while the network
    evaluates B. A GPU host's network then rarely waits for the search, nor the search for
    it. The trees are those of a step without overlap except for the order of the random
    draws (A's noise before B's), so a fixed seed still gives the same games, run after run."""

    def __init__(self, games: int, size: int, config: SearchConfig, komi: float = 7.5,
                 move_cap: int | None = None, max_visits: int | None = None, batch_size: int | None = None,
                 threads: int = 1, overlap: bool = False):
        self.G = games
        self.threads = search_threads(threads)
        self.pool = chunkpool.pool(self.threads) if self.threads > 1 else None
        # the network's own thread, for overlap (one: its calls stay in order)
        self.nn = ThreadPoolExecutor(1, thread_name_prefix="azgo-nn") if overlap else None
        self.N = size
        self.config = config
        self.komi = komi
        self.move_cap = move_cap if move_cap is not None else 2 * size * size
        self.H = config.history
        self.params = kernel_params(config, komi)
        self.zob = zobrist(size)
        A = size * size + 1
        visits = max_visits if max_visits is not None else max(config.visits, config.cheap_visits)
        # every simulation adds at most one node and a search stops at the target, so a
        # tree (reused part included) never holds more than max_visits + 1 nodes
        self.max_visits = visits
        M = visits + 8
        E = M * A
        self.tree = arena.new_tree(games, M, E)
        self.scratch = arena.new_tree(1, M, E)  # compact()'s copy of one game's kept subtree
        self.games = arena.new_game_arrays(games, size, self.H, self.move_cap + 2)
        self.gum = gumbel.make_arrays(games, A, visits)
        self.batch = np.zeros((batch_size or games, num_planes(self.H), size, size), np.uint8)
        # overlap: half B's planes are written while the network still reads half A's
        self.batch_b = np.zeros_like(self.batch) if overlap else None
        self.targets = np.zeros(games, np.int32)
        self.info = self.tree[arena.INFO]
        for g in range(games):
            self.new_game(g)

    # --- games -----------------------------------------------------------------------------
    def new_game(self, g: int) -> None:
        """Empty board in slot ``g``, black to move, fresh tree."""
        self.load(g, Position(self.N, self.komi, self.move_cap))

    def load(self, g: int, pos: Position) -> None:
        """Copy a ``Position`` (board, superko history, stone history) into slot ``g``."""
        arrays = self.games
        history, root_stones = arrays[arena.HISTORY], arrays[arena.ROOT_STONES]
        arrays[arena.ROOT_BOARD][g] = pos.state
        history[g, :] = 0
        history[g, :pos.n_history] = pos.history[:pos.n_history]
        arrays[arena.BLOOM][g] = pos.bloom
        self.info[g, mcts.NHIST] = pos.n_history
        root_stones[g] = 0
        recent = pos.recent_stones(self.H)
        root_stones[g, :len(recent)] = recent
        mcts.reset_tree(self.tree, g)

    def play(self, g: int, move: int) -> None:
        """Play ``move`` at game ``g``'s root, keeping the subtree when the config says so."""
        if self.is_over(g):
            raise ValueError(f"game {g} is over: no move can be played")
        if not 0 <= move <= self.N * self.N:
            raise ValueError(f"move {move} is off a {self.N}x{self.N} board")
        if move != self.N * self.N:
            boards = self.games
            code = B.check_move(boards[arena.ROOT_BOARD][g], self.N, coords.to_padded(self.N, move),
                                self.scalar(g, B.TO_PLAY), self.zob, boards[arena.HISTORY][g], self.info[g, mcts.NHIST],
                                boards[arena.BLOOM][g], _NO_PATH, 0)
            if code != B.LEGAL:
                raise ValueError(f"illegal move {coords.to_gtp(self.N, move)} in game {g}: {B.REASONS[code]}")
        mcts.play_at_root(self.tree, self.games, self.scratch, self.zob, g, move, self.N, self.H,
                          self.config.reuse_tree and not self.config.gumbel)

    def scalar(self, g: int, slot: int) -> int:
        return int(self.games[arena.ROOT_BOARD][g, B.scalar_index(self.N, slot)])

    def is_over(self, g: int) -> bool:
        return self.scalar(g, B.PASSES) >= 2 or self.scalar(g, B.NMOVES) >= self.move_cap

    # --- search ----------------------------------------------------------------------------
    def start(self, g: int, visits: int, noise: bool) -> None:
        """Ask for ``visits`` root child visits for game ``g``, with root noise or not
        (Dirichlet under puct, Gumbel g(a) under gumbel)."""
        if self.is_over(g):
            raise ValueError(f"game {g} is over: nothing to search")
        if not 0 < visits <= self.max_visits:
            raise ValueError(f"visits must be in 1..{self.max_visits} for this forest, got {visits}")
        self.targets[g] = visits
        mcts.start_move(self.tree, self.gum, g, self.params, noise)

    def searched(self, gids: np.ndarray) -> np.ndarray:
        """bool [len(gids)]: whose root has reached its target (child visits >= target)."""
        node_count, node_N, info = self.tree[arena.NODE_COUNT], self.tree[arena.NODE_N], self.info
        roots = info[gids, mcts.ROOT]
        return (node_count[gids, roots] >= 0) & (node_N[gids, roots] - 1 >= self.targets[gids])

    def pending(self, gids: np.ndarray) -> np.ndarray:
        """The games in ``gids`` whose root has not reached its target yet."""
        return gids[~self.searched(gids)]

    def step(self, gids: np.ndarray, evaluate: Evaluator) -> int:
        """One batched step over ``gids`` (at most one leaf each); returns leaves evaluated."""
        evaluated = 0
        cap = self.batch.shape[0]
        for start in range(0, len(gids), cap):
            chunk = gids[start:start + cap]
            if self.nn is not None and len(chunk) > 1:
                evaluated += self._step_overlapped(chunk, evaluate)
            elif self.threads > 1:
                rows = self._select(chunk, self.batch)
                if rows:
                    self._expand(chunk, *evaluate(self.batch[:rows]))
                evaluated += rows
            else:
                n = mcts.select_leaves(self.tree, self.games, self.gum, self.zob, chunk, self.targets, self.params,
                                       self.N, self.H, self.move_cap, self.batch)
                if n:
                    logits, values = evaluate(self.batch[:n])
                    mcts.expand_and_backup(self.tree, self.games, self.zob, chunk, self.params, self.N,
                                           np.ascontiguousarray(logits, np.float32),
                                           np.ascontiguousarray(values, np.float32))
                    evaluated += n
        return evaluated

    def _step_overlapped(self, gids: np.ndarray, evaluate: Evaluator) -> int:
        """``step`` over at most a batch of games as a two-stage pipeline (see the class docstring)."""
        half = (len(gids) + 1) // 2
        a, b = gids[:half], gids[half:]
        rows_a = self._select(a, self.batch)
        pending = self.nn.submit(evaluate, self.batch[:rows_a]) if rows_a else None
        rows_b = self._select(b, self.batch_b)  # while the network evaluates A
        out_a = pending.result() if pending else None
        pending = self.nn.submit(evaluate, self.batch_b[:rows_b]) if rows_b else None
        if out_a is not None:
            self._expand(a, *out_a)  # while the network evaluates B
        if pending is not None:
            self._expand(b, *pending.result())
        return rows_a + rows_b

    def _chunks(self, n: int) -> list[int]:
        parts = min(n, 4 * self.threads)  # a few chunks per thread: descents differ in length
        return [n * c // parts for c in range(parts + 1)]

    def _select(self, gids: np.ndarray, batch: np.ndarray) -> int:
        """Descend ``gids`` (at most ``len(batch)`` games) on ``self.threads`` threads
        (``chunkpool``); their leaves' planes to the first rows of ``batch``, in ``gids``
        order; returns the rows filled. Rows and noise as ``select_leaves`` on one thread."""
        n = len(gids)
        status = np.zeros(n, np.int32)
        tree, games, params, N = self.tree, self.games, self.params, self.N
        mcts.draw_root_gumbel(tree, games, self.gum, gids, self.targets, params, N, self.move_cap)
        if self.pool is None:
            mcts.select_chunk(tree, games, self.gum, self.zob, gids, self.targets, params, N, self.H,
                              self.move_cap, batch[:n], status)
        else:
            bounds = self._chunks(n)

            def select(c: int) -> None:
                lo, hi = bounds[c], bounds[c + 1]
                mcts.select_chunk(tree, games, self.gum, self.zob, gids[lo:hi], self.targets, params, N, self.H,
                                  self.move_cap, batch[lo:hi], status[lo:hi])

            self.pool.map(select, len(bounds) - 1)
        return mcts.pack_rows(status, batch)

    def _expand(self, gids: np.ndarray, logits: np.ndarray, values: np.ndarray) -> None:
        """Expand and back up the pending leaves of ``gids`` with the network's answer for the
        rows ``_select`` filled, on ``self.threads`` threads; noise drawn as on one thread."""
        n = len(gids)
        logits = np.ascontiguousarray(logits, np.float32)
        values = np.ascontiguousarray(values, np.float32)
        status = np.zeros(n, np.int32)
        slot_of = np.empty(n, np.int64)
        tree, games, params, N = self.tree, self.games, self.params, self.N
        mcts.pending_slots(tree, gids, slot_of)
        if self.pool is None:
            mcts.expand_chunk(tree, games, self.zob, gids, params, N, logits, values, slot_of, status)
        else:
            bounds = self._chunks(n)

            def expand(c: int) -> None:
                lo, hi = bounds[c], bounds[c + 1]
                mcts.expand_chunk(tree, games, self.zob, gids[lo:hi], params, N, logits, values, slot_of[lo:hi],
                                  status[lo:hi])

            self.pool.map(expand, len(bounds) - 1)
        mcts.finish_expansions(tree, gids, params, status)

    def search(self, gids: np.ndarray, evaluate: Evaluator) -> int:
        """Run steps until every game in ``gids`` reaches its target; returns leaves evaluated."""
        total = 0
        gids = np.asarray(gids, dtype=np.int64)
        for g in gids:
            if self.is_over(int(g)):
                raise ValueError(f"game {g} is over: nothing to search")
        while len(todo := self.pending(gids)):
            total += self.step(todo, evaluate)
        return total

    # --- results ---------------------------------------------------------------------------
    def root_visits(self, g: int) -> tuple[np.ndarray, np.ndarray]:
        """Moves int16 [k] and visit counts int32 [k] of the root's visited children."""
        node_first, node_count = self.tree[arena.NODE_FIRST], self.tree[arena.NODE_COUNT]
        edge_move, edge_N = self.tree[arena.EDGE_MOVE], self.tree[arena.EDGE_N]
        root = self.info[g, mcts.ROOT]
        f, c = node_first[g, root], max(node_count[g, root], 0)
        moves, counts = edge_move[g, f:f + c], edge_N[g, f:f + c]
        keep = counts > 0
        return moves[keep].copy(), counts[keep].copy()

    def chosen_move(self, g: int) -> int:
        """Gumbel: the move of the finished search, the Sequential Halving winner (most visited,
        then the largest g(a) + logits(a) + sigma(q(a))); the pass if the root has no child."""
        root = self.info[g, mcts.ROOT]
        e = gumbel.chosen_edge(self.tree, self.gum, g, root, self.config.c_visit, self.config.c_scale)
        return self.N * self.N if e < 0 else int(self.tree[arena.EDGE_MOVE][g, e])

    def improved_policy(self, g: int) -> tuple[np.ndarray, np.ndarray]:
        """Moves int16 [k] of all the root's children and pi' float64 [k] = softmax(logits +
        sigma(completedQ)): Gumbel AlphaZero's policy target (unvisited moves get v_mix)."""
        root = self.info[g, mcts.ROOT]
        f, c = self.tree[arena.NODE_FIRST][g, root], max(self.tree[arena.NODE_COUNT][g, root], 0)
        pi = np.zeros(c, np.float64)
        if c:
            gumbel.improved_policy(self.tree, g, root, self.config.c_visit, self.config.c_scale, pi)
        return self.tree[arena.EDGE_MOVE][g, f:f + c].copy(), pi

    def root_policy_target(self, g: int, played: int) -> tuple[np.ndarray, np.ndarray]:
        """pi' quantised for a record (``quantise_policy``): moves int16 [k], weights int32 [k]."""
        moves, pi = self.improved_policy(g)
        return quantise_policy(moves, pi, played)

    def root_priors(self, g: int) -> tuple[np.ndarray, np.ndarray]:
        """Moves and priors P of the root's children (noise included when drawn)."""
        root = self.info[g, mcts.ROOT]
        f, c = self.tree[arena.NODE_FIRST][g, root], max(self.tree[arena.NODE_COUNT][g, root], 0)
        return self.tree[arena.EDGE_MOVE][g, f:f + c].copy(), self.tree[arena.EDGE_P][g, f:f + c].copy()

    def root_value(self, g: int) -> float:
        """Q of the root from the side to move's view. Under gumbel, Q(a) of the move chosen
        (``chosen_move``): Sequential Halving visits every considered move, bad ones included,
        so the root's mean would understate the position (and resign it)."""
        root = self.info[g, mcts.ROOT]
        if self.config.gumbel:
            e = gumbel.chosen_edge(self.tree, self.gum, g, root, self.config.c_visit, self.config.c_scale)
            if e >= 0 and self.tree[arena.EDGE_N][g, e] > 0:
                return float(self.tree[arena.EDGE_W][g, e] / self.tree[arena.EDGE_N][g, e])
        n = self.tree[arena.NODE_N][g, root]
        return float(self.tree[arena.NODE_W][g, root] / n) if n else 0.0

    def noise_draws(self, g: int) -> int:
        return int(self.info[g, mcts.DRAWS])


def quantise_policy(moves: np.ndarray, pi: np.ndarray, played: int,
                    total: int = POLICY_TARGET_TOTAL) -> tuple[np.ndarray, np.ndarray]:
    """Integer weights int32 [k] for a distribution ``pi`` [n] over ``moves`` [n], in the shape
    of visit counts: largest remainders to ``total``, zero weights dropped, the ``played`` move
    kept with weight >= 1 (the sum is then at most ``total + 1``). ``records.GameRecord``
    normalises them back (``policy_target``)."""
    scaled = np.asarray(pi, np.float64) * (total / max(float(np.sum(pi)), 1e-300))
    w = np.floor(scaled).astype(np.int64)
    short = total - int(w.sum())
    if short > 0:
        w[np.argsort(w - scaled, kind="stable")[:short]] += 1  # largest fractional parts first
    w[moves == played] = np.maximum(w[moves == played], 1)
    keep = w > 0
    return np.asarray(moves)[keep].astype(np.int16), w[keep].astype(np.int32)


def choose_move(moves: np.ndarray, counts: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """A move from visit counts: the most visited at temperature 0, else ~ N^(1/T)."""
    if temperature <= 1e-3:
        return int(moves[int(np.argmax(counts))])
    logw = np.log(counts.astype(np.float64)) / temperature
    w = np.exp(logw - logw.max())
    return int(moves[rng.choice(len(moves), p=w / w.sum())])


class MctsPlayer:
    """One game's search for GTP and matches: no noise, the most visited move (under gumbel
    the Sequential Halving winner with g = 0: deterministic; matches vary their openings)."""

    def __init__(self, evaluate: Evaluator, visits: int = 200, config: SearchConfig | None = None, seed: int = 0):
        self.evaluate = evaluate
        self.visits = visits
        self.config = config or SearchConfig(visits=visits, cheap_visits=visits)
        self.forest: Forest | None = None
        self.rng = np.random.default_rng(seed)
        mcts.seed_noise(seed)

    def _forest(self, pos: Position) -> Forest:
        f = self.forest
        if f is None or f.N != pos.size or f.komi != pos.komi or f.move_cap != pos.move_cap:
            self.forest = f = Forest(1, pos.size, self.config, pos.komi, pos.move_cap, max_visits=self.visits)
        return f

    def analyse(self, pos: Position) -> tuple[np.ndarray, np.ndarray, float]:
        """Search ``pos``: root moves, their visits and the root value (side to move's view)."""
        if pos.is_over:
            raise ValueError("the game is over: nothing to search")
        f = self._forest(pos)
        f.load(0, pos)
        f.start(0, self.visits, noise=False)
        f.search(np.array([0]), self.evaluate)
        moves, counts = f.root_visits(0)
        return moves, counts, f.root_value(0)

    def genmove(self, pos: Position) -> int:
        """The move to play (flat index; pass = N*N)."""
        moves, counts, _ = self.analyse(pos)
        if len(moves) == 0:
            return pos.size * pos.size
        if self.config.gumbel and self.forest is not None:
            return self.forest.chosen_move(0)
        return choose_move(moves, counts, 0.0, self.rng)
