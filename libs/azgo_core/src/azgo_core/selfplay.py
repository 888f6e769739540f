"""The self-play runner: ``parallel_games`` games in one process, one network call a step.

Every step descends each game's tree once and evaluates all their leaves in one batch (up
to the network's ``batch_size`` per call), so the network sees large batches while each
tree stays nearly sequential. A game whose search has reached its visits plays its move
between steps, and a finished game is replaced by a new one at once.

Per move: playout-cap randomization (KataGo) picks a full search (``visits``, Dirichlet
noise at the root, recorded as a policy target) with probability ``full_search_prob``, else
a cheap one (``cheap_visits``, no noise, not a policy target). Moves are drawn ~ N^(1/T)
during the opening, then the most visited. A side passes only as ``mcts`` allows (after the
opponent's pass, or once the board is divided), so games are played out.

Under ``search.algorithm: gumbel`` (Gumbel AlphaZero): every full search draws Gumbel noise
(no Dirichlet), a cheap one only while the move's temperature is above 0; the move played is
the Sequential Halving winner; a full search records the quantised completed-Q policy pi'
(``Forest.root_policy_target``) in the record's visit counts, a cheap one its root visits.

Resignation cannot take self-play over: a side resigns when its root value falls below its
*own colour's* calibrated threshold (none until enough no-resign games won by that colour
have been seen: a colour that never wins never resigns), not before ``resign_min_moves``,
and only while the recent share of resigned games is below ``resign_max_share``. A
``no_resign_share`` of games play on to measure false resignations
(``RunnerStats.false_resignations``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from . import __version__, arena, mcts
from . import board as B
from .board import BLACK, WHITE
from .params import SelfPlayConfig
from .records import GameRecord
from .search import Evaluator, Forest, choose_move


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


RESIGN_WINDOW = 200  # finished games over which the resigned share is measured


class ResignCalibration:
    """AlphaGo Zero's automatic resignation threshold, one per colour.

    Every finished no-resign game with a winner contributes the lowest root value the eventual
    winner saw (``add``). Resigning below threshold v would have lost exactly the games whose
    winner fell below v, so colour c's threshold is the ``target`` quantile of the minima of
    the games c won (capped at ``ceiling``): at most ``target`` of them would have been
    resigned falsely. Until ``min_games`` such games are known colour c has no threshold and
    never resigns. Pooling both colours (AlphaGo Zero) fails when one colour stops winning:
    the pool then holds no evidence about it, the threshold sits at its cap, and the losing
    colour resigns every game at the first low value. The last ``window`` games of each colour
    count, so the thresholds follow the network as it changes.
    """

    def __init__(self, ceiling: float, target: float = 0.05, min_games: int = 20, window: int = 200):
        self.ceiling, self.target, self.min_games = ceiling, target, min_games
        self.minima: dict[int, deque[float]] = {BLACK: deque(maxlen=window), WHITE: deque(maxlen=window)}
        self.threshold: dict[int, float | None] = {BLACK: None, WHITE: None}
        """Colour -> resign below this root value; None: not calibrated yet (never resign). Kept
        up to date by ``add`` (read on every move, changed once per finished no-resign game)."""

    def add(self, winner: int, winner_min_value: float) -> None:
        if winner not in self.minima or not math.isfinite(winner_min_value):
            return
        minima = self.minima[winner]
        minima.append(winner_min_value)
        if len(minima) >= self.min_games:
            # strictly below the quantile: a winner whose minimum equals it would not have resigned
            q = float(np.quantile(np.fromiter(minima, float), self.target))
            self.threshold[winner] = min(self.ceiling, q - 1e-6)


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
        self.recent_resigned: deque[bool] = deque(maxlen=RESIGN_WINDOW)
        self._finished: list[GameRecord] = []
        self._seeds = np.random.SeedSequence(seed)
        mcts.seed_noise(seed % 2**32)
        G = config.parallel_games
        self.forest = Forest(G, config.board_size, self.search, config.komi, config.move_cap,
                             batch_size=min(config.batch_size, G), threads=config.search_threads,
                             overlap=config.overlap)
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
        share = sum(self.recent_resigned) / len(self.recent_resigned) if self.recent_resigned else 0.0
        allowed = rng.random() >= self.search.no_resign_share and share <= self.config.resign_max_share
        game = _Game(seed=seed, rng=rng, resign_allowed=allowed, generation=self.generation)
        self.forest.new_game(g)
        return game

    def _start_move(self, g: int) -> None:
        game = self.games[g]
        game.full_now = game.rng.random() < self.search.full_search_prob
        visits = self.search.visits if game.full_now else self.search.cheap_visits
        noise = game.full_now or (self.search.gumbel and self._temperature(len(game.moves)) > 0)
        self.forest.start(g, visits, noise=noise)

    def _temperature(self, n_moves: int) -> float:
        opening = n_moves < self.search.opening_moves(self.config.board_size)
        return self.search.temperature if opening else self.search.final_temperature

    def _play_move(self, g: int) -> GameRecord | None:
        """The search of game ``g`` is done: record it, play the move, maybe end the game."""
        f, game = self.forest, self.games[g]
        moves, counts = f.root_visits(g)
        value = f.root_value(g)
        to_play = f.scalar(g, B.TO_PLAY)
        n_moves = len(game.moves)
        game.generation = self.generation  # the model that made this decision, resignation included
        game.min_value[to_play] = min(game.min_value[to_play], value)
        threshold = self.resign_threshold(to_play)
        if threshold is not None and value < threshold and n_moves >= self.config.min_moves_to_resign:
            if game.resign_allowed:
                return self._finish(g, winner=3 - to_play, resigned=True)
            game.would_resign = game.would_resign or to_play
        if self.search.gumbel:
            move = f.chosen_move(g)
            if game.full_now:
                moves, counts = f.root_policy_target(g, move)
        else:
            move = choose_move(moves, counts, self._temperature(n_moves), game.rng)
        game.moves.append(move)
        game.visits.append((moves, counts))
        game.full.append(game.full_now)
        game.values.append(value)
        f.play(g, move)
        self.stats.moves += 1
        if f.is_over(g):
            score = B.area_score(f.games[arena.ROOT_BOARD][g], f.N) - self.config.komi
            winner = B.BLACK if score > 0 else B.WHITE if score < 0 else 0
            return self._finish(g, winner=winner, resigned=False, score=float(score))
        self._start_move(g)
        return None

    def resign_threshold(self, colour: int) -> float | None:
        """The root value below which ``colour`` resigns now (None: it may not resign yet)."""
        return self.search.resign_threshold if self.resign is None else self.resign.threshold[colour]

    def _finish(self, g: int, winner: int, resigned: bool, score: float = float("nan")) -> GameRecord:
        game = self.games[g]
        if self.resign is not None and not game.resign_allowed and winner:
            self.resign.add(winner, game.min_value[winner])
        self.recent_resigned.append(resigned)
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
