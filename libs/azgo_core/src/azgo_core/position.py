"""A game of Go as a Python object over the compiled board (``azgo_core.board``).

``Position`` is the friendly face of the rules for GTP, records, tests and training: moves
are flat indices (``coords``: row-major, pass = N*N), colours are ``BLACK``/``WHITE``.
Rules: Tromp-Taylor area scoring with komi, suicide illegal, positional superko, the game
ends after two passes in a row or at the move cap (default ``2*N*N``). Resignation is a
result, not a move: it belongs to the game record.
"""

from __future__ import annotations

import numpy as np

from . import board as B
from . import coords
from .features import num_planes, planes_from_history

BLACK, WHITE, EMPTY = B.BLACK, B.WHITE, B.EMPTY

_ZOBRIST: dict[int, np.ndarray] = {}
_NO_PATH = np.zeros(1, dtype=np.uint64)


def zobrist(size: int) -> np.ndarray:
    """The shared Zobrist table of a board size (``uint64 [3, P]``)."""
    if size not in _ZOBRIST:
        _ZOBRIST[size] = B.zobrist_table(size)
    return _ZOBRIST[size]


class IllegalMove(ValueError):
    """A move the rules forbid; ``reason`` is 'occupied', 'suicide', 'superko', 'game over' or 'off board'."""

    def __init__(self, move: int, reason: str, size: int):
        vertex = coords.to_gtp(size, move) if 0 <= move <= size * size else str(move)
        super().__init__(f"illegal move {vertex}: {reason}")
        self.move = move
        self.reason = reason


class Position:
    """A game in progress: the board, the side to move and the positions seen so far.

    Data: ``state`` int32 [board.state_length(N)] (the compiled board), ``history`` uint64
    [cap+1] hashes of every position so far (for superko), ``bloom`` uint64 [64], and
    ``colours`` int8 [T+1, N*N], the stones after each move (for the history planes).
    """

    def __init__(self, size: int = 9, komi: float = 7.5, move_cap: int | None = None):
        self.size = coords.check_size(size)
        self.komi = float(komi)
        self.move_cap = int(move_cap) if move_cap is not None else 2 * size * size
        self.zob = zobrist(size)
        self.state = np.empty(B.state_length(size), dtype=np.int32)
        B.init_board(self.state, size)
        self.history = np.zeros(self.move_cap + 2, dtype=np.uint64)
        self.bloom = np.zeros(B.BLOOM_WORDS, dtype=np.uint64)
        self.n_history = 0
        self.moves: list[int] = []
        self._stones: list[np.ndarray] = []
        self._record_position()

    # --- state ------------------------------------------------------------------------
    @property
    def _P(self) -> int:
        return B.padded_points(self.size)

    def _scalar(self, slot: int) -> int:
        return int(self.state[B.scalar_index(self.size, slot)])

    @property
    def to_play(self) -> int:
        return self._scalar(B.TO_PLAY)

    @property
    def passes(self) -> int:
        return self._scalar(B.PASSES)

    @property
    def n_moves(self) -> int:
        return self._scalar(B.NMOVES)

    @property
    def hash(self) -> int:
        return int(B.get_hash(self.state, self._P))

    @property
    def is_over(self) -> bool:
        return self.passes >= 2 or self.n_moves >= self.move_cap

    def stones(self) -> np.ndarray:
        """Colour of every point, int8 [N*N] in flat order."""
        return self._stones[-1].copy()

    def _record_position(self) -> None:
        h = B.get_hash(self.state, self._P)
        self.history[self.n_history] = h
        self.n_history += 1
        B.bloom_add(self.bloom, h)
        out = np.empty(self.size * self.size, dtype=np.int8)
        B.stones_flat(self.state, self.size, out)
        self._stones.append(out)

    # --- rules --------------------------------------------------------------------------
    def why_illegal(self, move: int) -> str | None:
        """None if ``move`` is legal for the side to move, else the reason."""
        n = self.size
        if not 0 <= move <= n * n:
            return "off board"
        if self.is_over:
            return "game over"
        if move == n * n:
            return None
        code = B.check_move(
            self.state, n, coords.to_padded(n, move), self.to_play, self.zob,
            self.history, self.n_history, self.bloom, _NO_PATH, 0,
        )
        return None if code == B.LEGAL else B.REASONS[code]

    def legal(self, move: int) -> bool:
        return self.why_illegal(move) is None

    def legal_mask(self) -> np.ndarray:
        """bool [N*N+1]: the legal moves of the side to move (none once the game is over)."""
        out = np.zeros(self.size * self.size + 1, dtype=np.bool_)
        if not self.is_over:
            B.legal_mask(self.state, self.size, self.zob, self.history, self.n_history, self.bloom, _NO_PATH, 0, out)
        return out

    def play(self, move: int) -> int:
        """Play ``move`` for the side to move; returns the stones captured. Raises IllegalMove."""
        reason = self.why_illegal(move)
        if reason is not None:
            raise IllegalMove(move, reason, self.size)
        pad = coords.to_padded(self.size, move)
        captured = B.play_move(self.state, self.size, pad, self.zob)
        self.moves.append(int(move))
        self._record_position()
        return captured

    def copy(self) -> Position:
        other = Position.__new__(Position)
        other.__dict__.update(self.__dict__)
        other.state = self.state.copy()
        other.history = self.history.copy()
        other.bloom = self.bloom.copy()
        other.moves = list(self.moves)
        other._stones = list(self._stones)  # arrays are never mutated once recorded
        return other

    # --- scoring ------------------------------------------------------------------------
    def area(self) -> int:
        """Black area minus white area (Tromp-Taylor), without komi."""
        return int(B.area_score(self.state, self.size))

    def ownership(self) -> np.ndarray:
        """Each point's Tromp-Taylor owner, int8 [N*N] flat: BLACK, WHITE or EMPTY (dame)."""
        return B.ownership(self.state, self.size, np.empty(self.size * self.size, dtype=np.int8))

    def score(self) -> float:
        """Black minus white minus komi: positive means black is ahead."""
        return self.area() - self.komi

    def winner(self) -> int:
        s = self.score()
        return BLACK if s > 0 else WHITE if s < 0 else EMPTY

    def result_string(self) -> str:
        s = self.score()
        if s == 0:
            return "0"
        return f"{'B' if s > 0 else 'W'}+{abs(s):g}"

    # --- network input ------------------------------------------------------------------
    def recent_stones(self, history: int) -> np.ndarray:
        """The last ``history`` boards, newest first: int8 [min(history, moves + 1), N*N] (a new array)."""
        return np.stack(self._stones[::-1][:history])

    def planes(self, history: int = 8) -> np.ndarray:
        """Input planes uint8 [2*history+1, N, N] for the side to move (see ``features``)."""
        out = np.zeros((num_planes(history), self.size, self.size), dtype=np.uint8)
        recent = self.recent_stones(history)
        planes_from_history(recent, len(recent), self.to_play, out)
        return out

    # --- text ---------------------------------------------------------------------------
    @classmethod
    def from_ascii(cls, text: str, komi: float = 7.5, to_play: int = BLACK, move_cap: int | None = None) -> Position:
        """A position from rows of '.', 'X' (black) and 'O' (white); whitespace ignored.

        The stones are set up directly (no moves); groups without liberties are refused.
        """
        rows = ["".join(line.split()) for line in text.strip().splitlines()]
        rows = [r for r in rows if r]
        size = len(rows)
        if any(len(r) != size for r in rows):
            raise ValueError(f"ASCII board must be square: got rows of lengths {[len(r) for r in rows]}")
        pos = cls(size, komi, move_cap)
        pos._stones.clear()
        pos.n_history = 0
        pos.bloom[:] = 0
        # place stones with the compiled play (no captures can happen on a valid setup)
        for colour, ch in ((BLACK, "X"), (WHITE, "O")):
            for r, row in enumerate(rows):
                for c, ch2 in enumerate(row):
                    if ch2 == ch:
                        pos.state[B.scalar_index(pos.size, B.TO_PLAY)] = colour
                        B.play_move(pos.state, size, coords.to_padded(size, r * size + c), pos.zob)
        bad = set(rows[r][c] for r in range(size) for c in range(size)) - set(".XO")
        if bad:
            raise ValueError(f"ASCII board has unknown characters {sorted(bad)}")
        base = B.scalar_index(pos.size, 0)
        pos.state[base + B.TO_PLAY] = to_play
        pos.state[base + B.NMOVES] = 0
        pos.state[base + B.PASSES] = 0
        pos.state[base + B.LAST] = -1
        pos._record_position()
        expected = sum(r.count("X") + r.count("O") for r in rows)
        P = pos._P
        for r in range(size):
            for c in range(size):
                p = coords.to_padded(size, r * size + c)
                if rows[r][c] in "XO" and (pos.state[p] == EMPTY or pos.state[3 * P + pos.state[2 * P + p]] == 0):
                    colour = "black" if rows[r][c] == "X" else "white"
                    vertex = coords.to_gtp(size, r * size + c)
                    raise ValueError(f"ASCII board: the {colour} group at {vertex} has no liberties")
        assert int(np.count_nonzero(pos._stones[-1])) == expected
        return pos

    def to_ascii(self) -> str:
        chars = {EMPTY: ".", BLACK: "X", WHITE: "O"}
        st = self._stones[-1]
        n = self.size
        return "\n".join("".join(chars[int(v)] for v in st[r * n:(r + 1) * n]) for r in range(n))
