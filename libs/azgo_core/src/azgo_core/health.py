"""Training health: is self-play still producing games worth learning from?

A run can look busy while teaching nothing: one colour winning every game, games cut short by
resignation, one side passing at its first chance. These figures, read off finished game
records, make that visible. The learner keeps them over the games it reads (``HealthWindow``)
and reports them with its losses (broker ``/status``, ``/metrics``, the ``make run`` progress
line, ``azgo report``).

Per game (``game_health``): the winner, whether it resigned, its length, which colour passed
first and at which move (1-based; 0 when nobody passed before the end), and whether the game
was a *would-be false resignation*: played out, yet the eventual winner's root value fell below
``resign_at`` at one of its own moves after ``min_moves`` (it would have resigned and lost a
won game). The share of those among the played-out games in which a side fell below
``resign_at`` is the false-resignation rate (AlphaGo Zero kept it under 5%).

Over a window of the last ``window`` games and per model generation (``Health``): games, black
win share, resigned share, mean length, white-passes-first share, mean move of the first pass,
false-resignation rate. ``warnings`` names a collapse: one colour above ``ONE_SIDED`` of the
window's games, or games shorter on average than ``short_game`` moves.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass

import numpy as np

from .board import BLACK, WHITE
from .records import GameRecord

ONE_SIDED = 0.9  # a window where one colour wins more than this share has collapsed
MIN_GAMES_TO_WARN = 50  # no warning from fewer games
MAX_GENERATIONS = 64  # generations kept in the per-generation table (the newest)


@dataclass(frozen=True)
class GameHealth:
    """What one finished game says about the health of self-play."""

    generation: int
    winner: int
    resigned: bool
    moves: int
    first_pass_colour: int
    """BLACK, WHITE, or 0 when no side passed before the game ended."""
    first_pass_move: int
    """1-based move number of that pass; 0 when none."""
    fell_below: bool
    """Played out, and a side's root value fell below the resignation value after min_moves."""
    false_resignation: bool
    """Of those, the side that fell below it won."""


def game_health(record: GameRecord, resign_at: float, min_moves: int) -> GameHealth:
    """The health figures of one game (see the module docstring)."""
    n = record.board_size
    moves = record.moves
    passes = np.flatnonzero(moves == n * n)
    first = int(passes[0]) if len(passes) else -1
    fell, false = False, False
    if not record.resigned:
        values = np.asarray(record.root_values, np.float64)[min_moves:]
        # move t is played by black when t is even; root values are the mover's view
        t = np.arange(min_moves, min_moves + len(values))
        low = np.isfinite(values) & (values < resign_at)
        low_colours = {BLACK if k % 2 == 0 else WHITE for k in t[low].tolist()}
        fell = bool(low_colours)
        false = record.winner in low_colours
    return GameHealth(generation=record.model_generation, winner=record.winner, resigned=record.resigned,
                      moves=record.num_moves, first_pass_colour=(BLACK if first % 2 == 0 else WHITE) if first >= 0 else 0,
                      first_pass_move=first + 1 if first >= 0 else 0, fell_below=fell, false_resignation=false)


@dataclass(frozen=True)
class Health:
    """Aggregates over a set of games (NaN where a share has no games to count)."""

    games: int
    black_win_share: float
    resigned_share: float
    mean_moves: float
    white_passes_first_share: float
    """Of the games in which someone passed, the share where white passed first."""
    first_pass_move: float
    """Mean move number of the first pass, over those games."""
    false_resignation_rate: float
    """Would-be false resignations over played-out games in which a side fell below the threshold."""

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def summarise(games: list[GameHealth]) -> Health:
    def share(hits: int, total: int) -> float:
        return hits / total if total else math.nan

    decided = [g for g in games if g.winner in (BLACK, WHITE)]
    passed = [g for g in games if g.first_pass_colour]
    fell = [g for g in games if g.fell_below]
    return Health(
        games=len(games),
        black_win_share=share(sum(g.winner == BLACK for g in decided), len(decided)),
        resigned_share=share(sum(g.resigned for g in games), len(games)),
        mean_moves=float(np.mean([g.moves for g in games])) if games else math.nan,
        white_passes_first_share=share(sum(g.first_pass_colour == WHITE for g in passed), len(passed)),
        first_pass_move=float(np.mean([g.first_pass_move for g in passed])) if passed else math.nan,
        false_resignation_rate=share(sum(g.false_resignation for g in fell), len(fell)),
    )


class HealthWindow:
    """The health of the last ``window`` games, and of each of the newest generations."""

    def __init__(self, board_size: int, resign_at: float, window: int = 1000, min_moves: int | None = None,
                 short_game: float | None = None):
        self.resign_at = resign_at
        self.min_moves = board_size * board_size // 4 if min_moves is None else min_moves
        self.short_game = board_size * board_size / 2 if short_game is None else short_game
        """Mean game length below which self-play is cut short (a 9x9 game that fills the board
        takes about 80 moves; 40 means games are resigned or passed away)."""
        self.recent: deque[GameHealth] = deque(maxlen=window)
        self.by_generation: OrderedDict[int, list[GameHealth]] = OrderedDict()

    def add(self, records: list[GameRecord]) -> None:
        for record in records:
            g = game_health(record, self.resign_at, self.min_moves)
            self.recent.append(g)
            self.by_generation.setdefault(g.generation, []).append(g)
            while len(self.by_generation) > MAX_GENERATIONS:
                self.by_generation.popitem(last=False)

    def window(self) -> Health:
        return summarise(list(self.recent))

    def generations(self) -> dict[int, Health]:
        return {gen: summarise(games) for gen, games in sorted(self.by_generation.items())}

    def warnings(self, h: Health | None = None) -> list[str]:
        """What looks like a collapse in the window (``h``: its ``window()`` when already
        computed); empty when self-play looks healthy."""
        h = h or self.window()
        if h.games < MIN_GAMES_TO_WARN:
            return []
        out = []
        for colour, share in (("black", h.black_win_share), ("white", 1 - h.black_win_share)):
            if math.isfinite(share) and share > ONE_SIDED:
                out.append(f"{colour} won {share:.0%} of the last {h.games} self-play games: one colour has taken over")
        if h.mean_moves < self.short_game:
            out.append(f"self-play games average {h.mean_moves:.0f} moves (below {self.short_game:.0f}): "
                       f"{h.resigned_share:.0%} resigned")
        return out
