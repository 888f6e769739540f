"""Matches between two players, refereed over ``Position``: one game, then many with colours alternated.

A *match player* is any object with

====================================  ==========================================================
``name``                              how the player appears in results and SGF (PB/PW)
``new_game(size, komi, seed)``        a fresh game starts (a GTP engine: boardsize, clear_board, komi;
                                      GNU Go also set_random_seed): ``seed`` differs per game
``genmove(position) -> int``          its move in ``position`` (flat index, pass = N*N), or ``RESIGN``
``play(colour, move)``                the opponent played ``move`` (a GTP engine: ``play``)
``close()``                           the match is over (a GTP engine quits)
====================================  ==========================================================

``PositionPlayer`` turns anything with ``genmove(position)`` (``search.MctsPlayer``, the GTP
engine's players) into one; ``RandomPlayer`` is the random anchor of the Elo scale. GTP
engines run as processes, so their player lives with the services' runtime, not in this library.

The referee (``play_game``) keeps its own ``Position`` and trusts no player: the game ends
after two passes, at the move cap, by resignation or when a player names a move the rules
forbid (it forfeits: ``W+F``). A finished game is scored by Tromp-Taylor area scoring with
komi, dead stones included, as self-play is: a player that passes with dead enemy stones on
its side loses those points.

A match is made of *distinct* games (``play_match``). Networks play without noise and GNU Go
is deterministic for a given seed, so without care a 10-game match replays the same two games
five times each, and a rating's interval counts the repeats as independent evidence. So each
pair of games starts from its own opening (``opening_book``: a few random legal moves away from
the first line, different for every pair), played once with each colour assignment, and every
game gets its own seed (GNU Go's ``set_random_seed``, the random player's generator).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from . import __version__, coords
from .gtp import RESIGN
from .position import BLACK, EMPTY, WHITE, Position
from .rating import score_interval
from .records import GameRecord, format_points

COLOUR_LETTER = {BLACK: "B", WHITE: "W"}


class MatchPlayer(Protocol):
    name: str

    def new_game(self, size: int, komi: float, seed: int = 0) -> None: ...

    def genmove(self, position: Position) -> int: ...

    def play(self, colour: int, move: int) -> None: ...

    def close(self) -> None: ...


class PositionPlayer:
    """A match player over anything with ``genmove(position) -> move`` (it keeps no game state)."""

    def __init__(self, inner, name: str):
        self.inner, self.name = inner, name

    def new_game(self, size: int, komi: float, seed: int = 0) -> None:
        pass

    def genmove(self, position: Position) -> int:
        return self.inner.genmove(position)

    def play(self, colour: int, move: int) -> None:
        pass

    def close(self) -> None:
        pass


def _neighbours(size: int) -> np.ndarray:
    """int [N*N, 4]: the orthogonal neighbours of every point; N*N (off board) where there is none."""
    out = np.full((size * size, 4), size * size, dtype=np.int64)
    for p in range(size * size):
        r, c = divmod(p, size)
        for k, (dr, dc) in enumerate(((-1, 0), (1, 0), (0, -1), (0, 1))):
            if 0 <= r + dr < size and 0 <= c + dc < size:
                out[p, k] = (r + dr) * size + c + dc
    return out


class RandomPlayer(PositionPlayer):
    """Uniform over the legal moves that do not fill one of its own eyes; passes when none is left.

    An *eye* here is an empty point whose on-board neighbours are all the mover's stones.
    Never filling them lets random play end (it would otherwise fill its last liberties) and
    is the usual random baseline; it is the Elo scale's zero.
    """

    def __init__(self, seed: int = 0, name: str = "random"):
        super().__init__(None, name)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._nb: dict[int, np.ndarray] = {}

    def new_game(self, size: int, komi: float, seed: int = 0) -> None:
        self.rng = np.random.default_rng((self.seed, seed))  # each game its own, reproducible

    def genmove(self, position: Position) -> int:
        n = position.size
        nb = self._nb.setdefault(n, _neighbours(n))
        stones = position.stones()
        me = position.to_play
        padded = np.append(stones, me)  # off board counts as the mover's own
        own_eye = (stones == EMPTY) & (padded[nb] == me).all(axis=1)
        candidates = np.nonzero(position.legal_mask()[: n * n] & ~own_eye)[0]
        if len(candidates) == 0:
            return coords.pass_move(n)
        return int(self.rng.choice(candidates))


@dataclass
class MatchGame:
    """One refereed game. ``winner`` BLACK, WHITE or 0 (draw); ``score`` black - white - komi (nan if not counted)."""

    size: int
    komi: float
    black: str
    white: str
    moves: list[int]
    winner: int
    score: float
    reason: str
    """'score' (two passes), 'move cap' (scored at the cap), 'resign' or 'forfeit'."""
    detail: str = ""
    """What happened, for forfeits: the illegal move and why."""
    opening: int = 0
    """Moves at the start set by the match's opening book, not chosen by the players."""

    def result_string(self) -> str:
        """SGF RE: 'B+3.5', 'W+R', 'B+F' (forfeit), '0' (draw)."""
        if self.winner == EMPTY:
            return "0"
        letter = COLOUR_LETTER[self.winner]
        if self.reason == "resign":
            return f"{letter}+R"
        if self.reason == "forfeit":
            return f"{letter}+F"
        return f"{letter}+{format_points(abs(self.score))}"

    def points_for(self, name_is_black: bool) -> float:
        """1 (won), 0.5 (draw) or 0 (lost) for the black player (True) or the white one."""
        if self.winner == EMPTY:
            return 0.5
        return 1.0 if (self.winner == BLACK) == name_is_black else 0.0

    def to_record(self, generation: int = 0) -> GameRecord:
        """A ``GameRecord`` (no visit counts; a forfeit is recorded as a resignation)."""
        ended_early = self.reason in ("resign", "forfeit")
        return GameRecord.from_visits(
            self.size, self.komi, self.moves, [([], [])] * len(self.moves), full_search=[False] * len(self.moves),
            winner=self.winner, score=math.nan if ended_early else self.score, resigned=ended_early,
            model_generation=generation, worker_id="match", code_version=__version__,
        )

    def to_sgf(self, about: str = "", date: str | datetime.date | None = None) -> str:
        """The game as SGF FF[4]: PB/PW are the players' names, RE the result, C what the match was."""
        from .sgf import to_sgf

        note = f"{self.black} (B) vs {self.white} (W), ended by {self.reason}" + (f": {self.detail}" if self.detail else "")
        if self.opening:
            note += f"; the first {self.opening} moves from the match's opening book"
        return to_sgf(self.to_record(), self.black, self.white, date=date, comments=False,
                      about=f"{about}; {note}" if about else note, result=self.result_string())


def _finished(pos: Position, black: str, white: str, reason: str, winner: int | None = None, detail: str = "",
              opening: int = 0) -> MatchGame:
    if winner is None:  # counted: Tromp-Taylor area with komi
        return MatchGame(pos.size, pos.komi, black, white, list(pos.moves), pos.winner(), pos.score(), reason,
                         opening=opening)
    return MatchGame(pos.size, pos.komi, black, white, list(pos.moves), winner, math.nan, reason, detail, opening)


def opening_book(size: int, count: int, seed: int, moves: int = 2) -> list[list[int]]:
    """``count`` distinct openings of ``moves`` legal moves each (flat indices), drawn with ``seed``.

    Moves avoid the first line on boards of 7 and more (no sensible game starts there), so an
    opening only varies the game; when the board has fewer distinct openings than ``count``
    they repeat in order.
    """
    rng = np.random.default_rng(seed)
    margin = 1 if size >= 7 else 0
    points = [r * size + c for r in range(margin, size - margin) for c in range(margin, size - margin)]
    book: list[list[int]] = []
    seen: set[tuple[int, ...]] = set()
    for _ in range(50 * count):
        if len(book) == count or moves == 0:
            break
        pos, line = Position(size, 7.5), []
        for _ in range(moves):
            legal = [p for p in points if pos.legal(p)]
            line.append(int(rng.choice(legal)))
            pos.play(line[-1])
        if tuple(line) not in seen:
            seen.add(tuple(line))
            book.append(line)
    if not book:
        return [[] for _ in range(count)]
    return [book[i % len(book)] for i in range(count)]


def play_game(black: MatchPlayer, white: MatchPlayer, size: int, komi: float, *, move_cap: int | None = None,
              on_move: Callable[[Position], None] | None = None, opening: list[int] | tuple[int, ...] = (),
              seed: int = 0) -> MatchGame:
    """Referee one game from ``opening`` (moves played for both sides first, each player told
    of them as of an opponent's move); ``seed`` goes to both players' ``new_game``;
    ``on_move(position)`` is called after every move (progress, stop checks)."""
    pos = Position(size, komi, move_cap)
    players = {BLACK: black, WHITE: white}
    for player in players.values():
        player.new_game(size, komi, seed)
    for move in opening:
        colour = pos.to_play
        pos.play(int(move))
        for player in players.values():
            player.play(colour, int(move))
    while not pos.is_over:
        colour = pos.to_play
        mover, other = players[colour], players[BLACK + WHITE - colour]
        move = mover.genmove(pos.copy())  # a copy: no player can change the referee's board
        if move == RESIGN:
            return _finished(pos, black.name, white.name, "resign", BLACK + WHITE - colour, opening=len(opening))
        why = pos.why_illegal(move) if isinstance(move, (int, np.integer)) else "not a move"
        if why is not None:
            vertex = coords.to_gtp(size, move) if isinstance(move, (int, np.integer)) and 0 <= move <= size * size else repr(move)
            detail = f"{mover.name} played the illegal move {vertex} ({why})"
            return _finished(pos, black.name, white.name, "forfeit", BLACK + WHITE - colour, detail, len(opening))
        pos.play(int(move))
        other.play(colour, int(move))
        if on_move is not None:
            on_move(pos)
    return _finished(pos, black.name, white.name, "move cap" if pos.passes < 2 else "score", opening=len(opening))


@dataclass
class MatchResult:
    """Games of A against B; ``a_black[i]``: A had black in game i."""

    a: str
    b: str
    games: list[MatchGame] = field(default_factory=list)
    a_black: list[bool] = field(default_factory=list)

    def add(self, game: MatchGame, a_black: bool) -> None:
        self.games.append(game)
        self.a_black.append(a_black)

    def points(self) -> list[float]:
        """A's points in each game (1, 0.5, 0)."""
        return [g.points_for(ab) for g, ab in zip(self.games, self.a_black)]

    @property
    def wins(self) -> int:
        return sum(p == 1.0 for p in self.points())

    @property
    def draws(self) -> int:
        return sum(p == 0.5 for p in self.points())

    @property
    def losses(self) -> int:
        return sum(p == 0.0 for p in self.points())

    def score(self, confidence: float = 0.95) -> tuple[float, float, float]:
        """A's points per game and its Wilson interval."""
        return score_interval(self.wins, self.draws, self.losses, confidence)


OPENING_MOVES = 2  # book moves at the start of every match game


def play_match(a: MatchPlayer, b: MatchPlayer, games: int, size: int, komi: float, *, move_cap: int | None = None,
               on_game: Callable[[int, MatchGame, bool], None] | None = None,
               on_move: Callable[[Position], None] | None = None, should_stop: Callable[[], bool] = lambda: False,
               seed: int = 0, opening_moves: int = OPENING_MOVES) -> MatchResult:
    """``games`` distinct games of A against B (see the module docstring): games 2k and 2k+1
    start from opening k, A black in the even ones; game i gets seed (``seed``, i).
    ``on_game(i, game, a_black)`` after each."""
    result = MatchResult(a.name, b.name)
    book = opening_book(size, (games + 1) // 2, seed, opening_moves)
    seeds = np.random.SeedSequence(seed).generate_state(max(games, 1))
    for i in range(games):
        if should_stop():
            break
        a_black = i % 2 == 0
        black, white = (a, b) if a_black else (b, a)
        game = play_game(black, white, size, komi, move_cap=move_cap, on_move=on_move, opening=book[i // 2],
                         seed=int(seeds[i]) % 2**31)
        result.add(game, a_black)
        if on_game is not None:
            on_game(i, game, a_black)
    return result


__all__ = ["MatchGame", "MatchPlayer", "MatchResult", "PositionPlayer", "RandomPlayer", "opening_book", "play_game",
           "play_match"]
