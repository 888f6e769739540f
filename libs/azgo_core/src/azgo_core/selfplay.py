"""The self-play runner: ``parallel_games`` games in one process, one network call a step.

Every step descends each game's tree once and evaluates all their leaves in one batch (up
to the network's ``batch_size`` per call), so the network sees large batches while each
tree stays nearly sequential. A game whose search has reached its visits plays its move
between steps, and a finished game is replaced by a new one at once.

Per move: playout-cap randomization (KataGo) picks a full search (``visits``, Dirichlet
noise at the root, recorded as a policy target) with probability ``full_search_prob``, else
a cheap one (``cheap_visits``, no noise, not a policy target). Moves are drawn ~ N^(1/T)
during the opening, then the most visited. A game resigns when the root value of the side
to move falls below ``resign_threshold``, except a ``no_resign_share`` of games that play
on to measure false resignations (``RunnerStats.false_resignations``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from . import __version__, mcts
from . import board as B
from .records import GameRecord
from .search import Evaluator, Forest, SearchConfig, choose_move


@dataclass(frozen=True)
class SelfPlayConfig:
    board_size: int = 9
    """Board size N (5 to 19)."""
    komi: float = 7.5
    """Komi given to white (Tromp-Taylor area scoring)."""
    parallel_games: int = 64
    """Games played at once in this process."""
    batch_size: int = 64
    """Largest network batch; leaves beyond it go to further calls in the same step."""
    move_cap: int | None = None
    """Moves after which a game ends; default 2*N*N."""
    resign_min_moves: int = 10
    """No resignation before this many moves."""
    no_pass_moves: int = 0
    """Before this many moves a side passes only when the search visited nothing else. Under
    Tromp-Taylor scoring a young network learns to pass at once (white wins an empty board by
    komi, and one black stone followed by two passes owns the whole board), so self-play
    collapses into three-move games; the services use N*N // 2. The policy target of those
    moves leaves the pass out too, so the network unlearns wanting it (it plays real matches,
    where nothing stops it)."""
    search: SearchConfig = field(default_factory=SearchConfig)


@dataclass
class RunnerStats:
    games: int = 0
    moves: int = 0
    nn_evals: int = 0
    resignations: int = 0
    no_resign_games: int = 0
    """Finished games that were not allowed to resign."""
    would_resign_games: int = 0
    """Of those, games where a side fell below the resignation threshold."""
    false_resignations: int = 0
    """Of those, games won by the side that would have resigned (AlphaGo Zero kept this < 5%)."""


class ResignCalibration:
    """AlphaGo Zero's automatic resignation threshold.

    Every finished no-resign game with a winner contributes the lowest root value the eventual
    winner saw (``add``). Resigning below threshold v would have lost exactly the games whose
    winner fell below v, so the threshold is the ``target`` quantile of those minima (capped at
    ``ceiling``): at most ``target`` of the games would have been resigned falsely. Until
    ``min_games`` minima are known there is no threshold (no resignation), which keeps a fresh
    network with an overconfident value head from resigning every game. The last ``window``
    games count, so the threshold follows the network as it changes.
    """

    def __init__(self, ceiling: float, target: float = 0.05, min_games: int = 20, window: int = 200):
        self.ceiling, self.target, self.min_games = ceiling, target, min_games
        self.minima: deque[float] = deque(maxlen=window)
        self.threshold: float | None = None
        """Resign below this root value; None: not calibrated yet (never resign). Kept up to
        date by ``add`` (read on every move, changed once per finished no-resign game)."""

    def add(self, winner_min_value: float) -> None:
        if not math.isfinite(winner_min_value):
            return
        self.minima.append(winner_min_value)
        if len(self.minima) >= self.min_games:
            # strictly below the quantile: a winner whose minimum equals it would not have resigned
            q = float(np.quantile(np.fromiter(self.minima, float), self.target))
            self.threshold = min(self.ceiling, q - 1e-6)


@dataclass
class _Game:
    """What a game in progress has recorded so far."""

    seed: int
    rng: np.random.Generator
    resign_allowed: bool
    moves: list[int] = field(default_factory=list)
    visits: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    full: list[bool] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    would_resign: int = 0
    min_value: dict[int, float] = field(default_factory=lambda: {1: math.inf, 2: math.inf})
    """Lowest root value each colour (BLACK=1, WHITE=2) saw, for the resignation calibration."""
    full_now: bool = True
    generation: int = 0


class SelfPlayRunner:
    """Plays games with ``evaluate`` and returns their ``GameRecord`` s as they finish."""

    def __init__(self, config: SelfPlayConfig, evaluate: Evaluator, *, model_generation: int = 0,
                 worker_id: str = "local", seed: int = 0, code_version: str = __version__):
        self.config = config
        self.search = config.search
        self.evaluate = evaluate
        self.generation = model_generation
        self.worker_id = worker_id
        self.code_version = code_version
        self.stats = RunnerStats()
        s = self.search
        self.resign = (ResignCalibration(s.resign_threshold, s.resign_false_positives, s.resign_calibration_games)
                       if s.resign_calibration_games else None)
        self._finished: list[GameRecord] = []
        self._seeds = np.random.SeedSequence(seed)
        mcts.seed_noise(seed % 2**32)
        G = config.parallel_games
        self.forest = Forest(G, config.board_size, self.search, config.komi, config.move_cap,
                             batch_size=min(config.batch_size, G))
        self.gids = np.arange(G)
        self.games = [self._new_game(g) for g in range(G)]
        for g in range(G):
            self._start_move(g)

    def set_model(self, evaluate: Evaluator, generation: int) -> None:
        """Adopt a new network between moves; trees built with the old priors are dropped."""
        self.evaluate = evaluate
        self.generation = generation
        for g in range(self.config.parallel_games):
            mcts.reset_tree(self.forest.tree, g)
            self._start_move(g)

    # --- the loop -------------------------------------------------------------------------
    def step(self) -> list[GameRecord]:
        """One batched search step for every game; returns the games that ended."""
        todo = self.gids[~self.forest.searched(self.gids)]
        if len(todo):
            self.stats.nn_evals += self.forest.step(todo, self.evaluate)
        finished = []
        # a reused subtree can hold a whole search already: every complete search plays
        for g in self.gids[self.forest.searched(self.gids)]:
            record = self._play_move(int(g))
            if record is not None:
                finished.append(record)
        return finished

    def play(self, num_games: int) -> list[GameRecord]:
        """Run until ``num_games`` games have finished."""
        while len(self._finished) < num_games:
            self._finished.extend(self.step())
        # games beyond the count are kept for the next call, never dropped
        out, self._finished = self._finished[:num_games], self._finished[num_games:]
        return out

    # --- one game -------------------------------------------------------------------------
    def _new_game(self, g: int) -> _Game:
        seed = int(self._seeds.spawn(1)[0].generate_state(1, np.uint64)[0])
        rng = np.random.default_rng(seed)
        game = _Game(seed=seed, rng=rng, resign_allowed=rng.random() >= self.search.no_resign_share,
                     generation=self.generation)
        self.forest.new_game(g)
        return game

    def _start_move(self, g: int) -> None:
        game = self.games[g]
        game.full_now = game.rng.random() < self.search.full_search_prob
        visits = self.search.visits if game.full_now else self.search.cheap_visits
        self.forest.start(g, visits, noise=game.full_now)

    def _play_move(self, g: int) -> GameRecord | None:
        """The search of game ``g`` is done: record it, play the move, maybe end the game."""
        f, game = self.forest, self.games[g]
        moves, counts = f.root_visits(g)
        value = f.root_value(g)
        to_play = f.scalar(g, B.TO_PLAY)
        n_moves = len(game.moves)
        game.generation = self.generation  # the model that made this decision, resignation included
        game.min_value[to_play] = min(game.min_value[to_play], value)
        threshold = self.resign_threshold
        if threshold is not None and value < threshold and n_moves >= self.config.resign_min_moves:
            if game.resign_allowed:
                return self._finish(g, winner=3 - to_play, resigned=True)
            game.would_resign = game.would_resign or to_play
        opening = n_moves < self.search.opening_moves(self.config.board_size)
        temperature = self.search.temperature if opening else self.search.final_temperature
        if n_moves < self.config.no_pass_moves:
            move = self._choose_not_pass(g, moves, counts, temperature, game.rng)
            # the target is what was allowed: the network learns not to want an opening pass
            keep = moves != f.N * f.N
            moves, counts = (moves[keep], counts[keep]) if counts[keep].sum() > 0 else (np.array([move]), np.array([1]))
        else:
            move = choose_move(moves, counts, temperature, game.rng)
        game.moves.append(move)
        game.visits.append((moves, counts))
        game.full.append(game.full_now)
        game.values.append(value)
        f.play(g, move)
        self.stats.moves += 1
        if f.is_over(g):
            score = B.area_score(f.games[0][g], f.N) - self.config.komi
            winner = B.BLACK if score > 0 else B.WHITE if score < 0 else 0
            return self._finish(g, winner=winner, resigned=False, score=float(score))
        self._start_move(g)
        return None

    @property
    def resign_threshold(self) -> float | None:
        """The root value below which a side resigns now (None: no resignation yet)."""
        return self.search.resign_threshold if self.resign is None else self.resign.threshold

    def _choose_not_pass(self, g: int, moves: np.ndarray, counts: np.ndarray, temperature: float, rng) -> int:
        """The move choice of the opening: anything but a pass while another move is legal.

        Among the visited moves when the search visited any besides the pass, else a legal move
        drawn by its prior.
        """
        pass_move = self.forest.N * self.forest.N
        others = moves != pass_move
        if counts[others].sum() > 0:
            return choose_move(moves[others], counts[others], temperature, rng)
        legal, priors = self.forest.root_priors(g)
        legal_others = legal != pass_move
        if not legal_others.any():
            return pass_move
        p = priors[legal_others].astype(np.float64) + 1e-12
        return int(rng.choice(legal[legal_others], p=p / p.sum()))

    def _finish(self, g: int, winner: int, resigned: bool, score: float = float("nan")) -> GameRecord:
        game = self.games[g]
        if self.resign is not None and not game.resign_allowed and winner:
            self.resign.add(game.min_value[winner])
        record = GameRecord.from_visits(
            self.config.board_size, self.config.komi, game.moves, game.visits,
            full_search=np.array(game.full, bool), root_values=np.array(game.values, np.float32),
            winner=winner, score=score, resigned=resigned, model_generation=game.generation,
            worker_id=self.worker_id, seed=game.seed, code_version=self.code_version,
        )
        self.stats.games += 1
        self.stats.resignations += int(resigned)
        self.stats.no_resign_games += int(not game.resign_allowed)
        self.stats.would_resign_games += int(game.would_resign != 0)
        if game.would_resign and game.would_resign == winner:
            self.stats.false_resignations += 1
        self.games[g] = self._new_game(g)
        self._start_move(g)
        return record
