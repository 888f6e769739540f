"""Game records and their batch wire format (msgpack, optionally one lz4 frame).

A ``GameRecord`` is one finished (or abandoned) self-play game: the flat moves (pass = N*N),
the sparse root visit counts of every search (CSR: the children visited before move ``t``
are ``visit_moves[visit_offsets[t]:visit_offsets[t+1]]`` with ``visit_counts`` alongside),
the result and where the game came from. Boards are rebuilt from the moves.

Wire format of a batch (``encode_batch``): a msgpack map ``{"v": FORMAT_VERSION, "g": [game,
...]}``, optionally compressed as a single lz4 frame (HC level 9, content size and checksum stored).
``decode_batch`` tells the two apart by the first four bytes: the lz4 frame magic
``04 22 4D 18`` (0x184D2204 little-endian) cannot start a msgpack map. Each game is a map
with these short keys; arrays are msgpack ``bin`` holding raw little-endian bytes, and their
lengths must match the declared counts T and K:

=====  ==================  ===========================  ====================================
key    field               msgpack type                 meaning
=====  ==================  ===========================  ====================================
n      board_size          int                          N, 5..19
k      komi                float
r      rules               str                          'tromp-taylor' (``RULES``: nothing else)
t      (T)                 int                          number of moves
K      (K)                 int                          number of sparse visit entries
m      moves               bin, ``<i2`` x T             flat moves, pass = N*N
o      visit_offsets       bin, ``<i4`` x (T+1)         CSR offsets into the two arrays below
vm     visit_moves         bin, ``<i2`` x K             children visited at each root
vc     visit_counts        bin, ``<i4`` x K             their visit counts N(s, a), 0..2**20
f      full_search         bin, ``u1`` x T (0/1)        playout cap: 1 = a policy target
q      root_values         bin, ``<f4`` x T             root value, side to move's view
w      winner              int                          BLACK=1, WHITE=2, 0 draw/unfinished
s      score               float                        black - white - komi (|s| <= N*N + |komi|); nan: no count
x      resigned            bool
gen    model_generation    int
wid    worker_id           str
seed   seed                int                          0 .. 2**64-1
cv     code_version        str
=====  ==================  ===========================  ====================================

No pickle anywhere: decoding only ever builds ints, floats, strings and numpy arrays. Every
failure is a ``RecordError`` naming the game, the field and what is wrong. Decoding is bounded
*while* it runs, so a hostile batch costs a small multiple of its size in memory and time:

- the blob is at most ``max_bytes`` (64 MiB); an lz4 frame decompresses in steps to at most
  ``MAX_RATIO`` (64) times its size plus 64 KiB, and never above ``max_bytes``: a frame that
  declares more is refused from its header, one that expands past it is refused at that step
  (self-play batches compress about 3x);
- the msgpack is read by its schema (``_Reader``), not unpacked whole: containers only where
  the format has them (the top map of 2 keys, the list of at most ``max_games`` games, each
  game's map of at most ``MAX_GAME_KEYS`` entries), so nesting is at most three deep and at
  most 4 + max_games * (1 + 2 * MAX_GAME_KEYS) objects are built; any other value is one
  scalar (a list or map there is refused before it is built), strings at most ``MAX_STR_LEN``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Iterable, Sequence

import lz4.frame
import msgpack
import numpy as np

from azgo_core import coords

FORMAT_VERSION = 1
LZ4_MAGIC = b"\x04\x22\x4d\x18"
BLACK, WHITE = 1, 2
DEFAULT_RULES = "tromp-taylor"

DEFAULT_MAX_BYTES = 64 << 20  # decompressed batch size limit
DEFAULT_MAX_GAMES = 10_000
MAX_GAME_KEYS = 24  # entries of one game's map read at most (18 are known; a few more are read to be named)
MAX_RATIO = 64  # an lz4 frame may decompress to at most this many times its size (+ RATIO_SLACK)...
RATIO_SLACK = 64 << 10  # ...self-play batches compress 2-5x
DECOMPRESS_STEP = 1 << 20  # a frame that does not declare its size is decompressed this much at a time
# lz4 HC level 9: ~30% smaller than the fast default on visit counts, decodes just as fast
COMPRESSION_LEVEL = 9
MAX_STR_LEN = 1024  # worker ids, code versions, rules
INT32_MAX = 2**31 - 1
MAX_VISITS = 2**20  # a visit count, and the total of one move's counts (a search, or Gumbel's policy weights)
RULES = ("tromp-taylor",)  # the rules this project implements: area scoring, positional superko

# field -> (wire key, little-endian dtype, length in terms of T and K)
_ARRAYS = {
    "moves": ("m", "<i2", lambda t, k: t),
    "visit_offsets": ("o", "<i4", lambda t, k: t + 1),
    "visit_moves": ("vm", "<i2", lambda t, k: k),
    "visit_counts": ("vc", "<i4", lambda t, k: k),
    "full_search": ("f", "u1", lambda t, k: t),
    "root_values": ("q", "<f4", lambda t, k: t),
}
# field -> (wire key, accepted python types)
_SCALARS = {
    "board_size": ("n", (int,)),
    "komi": ("k", (float, int)),
    "rules": ("r", (str,)),
    "winner": ("w", (int,)),
    "score": ("s", (float, int)),
    "resigned": ("x", (bool,)),
    "model_generation": ("gen", (int,)),
    "worker_id": ("wid", (str,)),
    "seed": ("seed", (int,)),
    "code_version": ("cv", (str,)),
}
_COUNT_KEYS = ("t", "K")
# wire key -> (field name, what it must be), for messages
_FIELD_OF = ({key: (name, "bin") for name, (key, *_) in _ARRAYS.items()}
             | {key: (name, types[0].__name__) for name, (key, types) in _SCALARS.items()}
             | {key: (f"count {key}", "int") for key in _COUNT_KEYS})
GAME_KEYS = frozenset(_COUNT_KEYS) | {k for k, *_ in _ARRAYS.values()} | {k for k, _ in _SCALARS.values()}


class RecordError(ValueError):
    """A game record or batch that is malformed; the message names the field."""


def format_points(x: float) -> str:
    """A score or komi without exponent or trailing zeros: 7.5 -> '7.5', 3.0 -> '3'."""
    text = format(abs(float(x)), "f").rstrip("0").rstrip(".")
    return ("-" if x < 0 and text != "0" else "") + text


def _array(name: str, value, dtype: str, lo=None, hi=None) -> np.ndarray:
    """``value`` as a 1-D array of ``dtype``, refusing lossy casts (wrong kind, out of range)."""
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise RecordError(f"field {name!r}: expected a 1-D array, got shape {arr.shape}")
    target = np.dtype(dtype)
    if arr.size == 0:
        return np.zeros(0, target)
    if target.kind == "b":
        if arr.dtype.kind not in "biu" or not np.isin(arr, (0, 1)).all():
            raise RecordError(f"field {name!r}: expected booleans (0 or 1), got {arr.dtype} {np.unique(arr)[:4]}")
    elif target.kind in "iu" and arr.dtype.kind not in "biu":
        raise RecordError(f"field {name!r}: expected integers, got {arr.dtype}")
    elif target.kind == "f" and arr.dtype.kind not in "biuf":
        raise RecordError(f"field {name!r}: expected floats, got {arr.dtype}")
    if lo is not None and arr.min() < lo:
        raise RecordError(f"field {name!r}: value {arr.min()} is below {lo}")
    if hi is not None and arr.max() > hi:
        raise RecordError(f"field {name!r}: value {arr.max()} is above {hi}")
    return arr.astype(target)  # a copy: records own their arrays


@dataclass(eq=False)
class GameRecord:
    """One self-play game. T = number of moves, K = total number of sparse visit entries.

    board_size     int                     N, 5..19
    komi           float
    rules          str                     'tromp-taylor' (area scoring, positional superko)
    moves          int16   [T]             flat moves, pass = N*N; black plays first
    visit_offsets  int32   [T+1]           visits of move t are in [off[t], off[t+1])
    visit_moves    int16   [K]             child moves visited at the root, flat
    visit_counts   int32   [K]             their visit counts N(s, a)
    full_search    bool    [T]             playout cap: only full searches are policy targets
    root_values    float32 [T]             search value at each root, side to move's view
                                           (nan when not recorded)
    winner         int                     BLACK=1, WHITE=2, 0 draw/unfinished
    score          float                   black - white - komi (area); nan when not counted
    resigned       bool
    model_generation, worker_id, seed, code_version: provenance
    """

    board_size: int
    komi: float
    rules: str
    moves: np.ndarray
    visit_offsets: np.ndarray
    visit_moves: np.ndarray
    visit_counts: np.ndarray
    full_search: np.ndarray
    root_values: np.ndarray
    winner: int
    score: float
    resigned: bool
    model_generation: int
    worker_id: str
    seed: int
    code_version: str

    def __post_init__(self) -> None:
        for name, (_, types) in _SCALARS.items():
            value = getattr(self, name)
            if isinstance(value, np.generic):
                value = value.item()
            if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
                raise RecordError(f"field {name!r}: expected {types[0].__name__}, got {type(value).__name__}")
            setattr(self, name, float(value) if float in types else value)
        try:
            n = coords.check_size(self.board_size)
        except coords.CoordinateError as e:
            raise RecordError(f"field 'board_size': {e}") from None
        pass_move = coords.pass_move(n)
        if not math.isfinite(self.komi) or abs(self.komi) > n * n:
            raise RecordError(f"field 'komi': {self.komi} is not a komi for a {n}x{n} board")
        if not self.rules:
            raise RecordError("field 'rules': empty")
        for name in ("rules", "worker_id", "code_version"):
            if len(getattr(self, name)) > MAX_STR_LEN:
                raise RecordError(f"field {name!r}: longer than {MAX_STR_LEN} characters")
        if self.rules not in RULES:
            raise RecordError(f"field 'rules': {self.rules[:40]!r} is not implemented (only {', '.join(RULES)})")

        self.moves = _array("moves", self.moves, "int16", 0, pass_move)
        self.visit_offsets = _array("visit_offsets", self.visit_offsets, "int32", 0, INT32_MAX)
        self.visit_moves = _array("visit_moves", self.visit_moves, "int16", 0, pass_move)
        self.visit_counts = _array("visit_counts", self.visit_counts, "int32", 0, MAX_VISITS)
        self.full_search = _array("full_search", self.full_search, "bool")
        self.root_values = _array("root_values", self.root_values, "float32")
        t, k = len(self.moves), len(self.visit_moves)
        for name, want in (("visit_offsets", t + 1), ("visit_counts", k), ("full_search", t), ("root_values", t)):
            if len(getattr(self, name)) != want:
                raise RecordError(f"field {name!r}: length {len(getattr(self, name))}, expected {want}")
        off = self.visit_offsets
        if off[0] != 0 or off[-1] != k or (np.diff(off) < 0).any():
            raise RecordError(f"field 'visit_offsets': must rise monotonically from 0 to K={k}")
        if (np.abs(self.root_values) > 1.0).any():  # nan compares false: allowed
            raise RecordError("field 'root_values': values must lie in [-1, 1] (or be nan)")

        if self.winner not in (0, BLACK, WHITE):
            raise RecordError(f"field 'winner': {self.winner} is not 0, BLACK=1 or WHITE=2")
        if math.isinf(self.score):
            raise RecordError("field 'score': infinite")
        if abs(self.score) > n * n + abs(self.komi):  # nan compares false: allowed
            raise RecordError(f"field 'score': {self.score:g} is beyond any score on a {n}x{n} board with komi "
                              f"{format_points(self.komi)}")
        if self.resigned and (self.winner == 0 or not math.isnan(self.score)):
            raise RecordError("field 'resigned': a resigned game needs a winner and a nan score")
        if math.isfinite(self.score):
            sign_winner = BLACK if self.score > 0 else WHITE if self.score < 0 else 0
            if self.winner != sign_winner:
                raise RecordError(f"field 'winner': {self.winner} disagrees with score {self.score}")
        if not 0 <= self.model_generation < 2**63:
            raise RecordError(f"field 'model_generation': {self.model_generation} is out of range")
        if not 0 <= self.seed < 2**64:
            raise RecordError(f"field 'seed': {self.seed} is not in 0 .. 2**64-1")

    @classmethod
    def from_visits(
        cls,
        board_size: int,
        komi: float,
        moves: Sequence[int],
        visits: Sequence[tuple[Sequence[int], Sequence[int]]],
        *,
        full_search: Sequence[bool] | None = None,
        root_values: Sequence[float] | None = None,
        winner: int = 0,
        score: float = math.nan,
        resigned: bool = False,
        rules: str = DEFAULT_RULES,
        model_generation: int = 0,
        worker_id: str = "",
        seed: int = 0,
        code_version: str = "",
    ) -> GameRecord:
        """Build a record from per-move ``(child moves, visit counts)`` pairs (one per move).

        ``full_search`` defaults to all True, ``root_values`` to nan (not recorded).
        """
        if len(visits) != len(moves):
            raise RecordError(f"field 'visits': {len(visits)} entries for {len(moves)} moves")
        vm = [np.asarray(m).reshape(-1) for m, _ in visits]
        vc = [np.asarray(c).reshape(-1) for _, c in visits]
        for t, (m, c) in enumerate(zip(vm, vc)):
            if len(m) != len(c):
                raise RecordError(f"field 'visits': move {t} has {len(m)} children but {len(c)} counts")
        lengths = [len(m) for m in vm]
        t = len(moves)

        def join(parts: list[np.ndarray]) -> np.ndarray:  # an empty list is float64: leave it out
            parts = [p for p in parts if p.size]
            return np.concatenate(parts) if parts else np.zeros(0, np.int64)

        return cls(
            board_size=board_size,
            komi=komi,
            rules=rules,
            moves=np.asarray(moves).reshape(-1),
            visit_offsets=np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]),
            visit_moves=join(vm),
            visit_counts=join(vc),
            full_search=np.ones(t, bool) if full_search is None else full_search,
            root_values=np.full(t, np.nan, np.float32) if root_values is None else root_values,
            winner=winner,
            score=score,
            resigned=resigned,
            model_generation=model_generation,
            worker_id=worker_id,
            seed=seed,
            code_version=code_version,
        )

    @property
    def num_moves(self) -> int:
        return len(self.moves)

    def visits_at(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(child moves int16 [k], visit counts int32 [k]) of the search before move ``t``."""
        if not 0 <= t < self.num_moves:
            raise IndexError(f"move {t} is not in a game of {self.num_moves} moves")
        lo, hi = self.visit_offsets[t], self.visit_offsets[t + 1]
        return self.visit_moves[lo:hi], self.visit_counts[lo:hi]

    def policy_target(self, t: int) -> np.ndarray:
        """The normalised root visit distribution pi before move ``t``: float32 [N*N+1]."""
        children, counts = self.visits_at(t)
        total = int(counts.sum(dtype=np.int64))
        if total <= 0:
            raise RecordError(f"move {t} has no visit counts (not a policy target)")
        pi = np.zeros(coords.num_actions(self.board_size), np.float64)
        np.add.at(pi, children, counts)  # add.at: a repeated child would be summed, not lost
        return (pi / total).astype(np.float32)

    def result_string(self) -> str:
        """SGF-style result: 'B+R', 'W+3.5', '0' (draw), 'B+' (margin unknown), 'Void'."""
        colour = {BLACK: "B", WHITE: "W"}.get(self.winner)
        if self.resigned:
            return f"{colour}+R"
        if math.isfinite(self.score):
            return f"{colour}+{format_points(abs(self.score))}" if colour else "0"
        return f"{colour}+" if colour else "Void"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GameRecord):
            return NotImplemented
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray):
                if a.dtype != b.dtype or not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
                    return False
            elif not (a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))):
                return False
        return True

    __hash__ = None  # type: ignore[assignment]  # mutable arrays


def _game_to_wire(r: GameRecord) -> dict:
    game = {"t": r.num_moves, "K": len(r.visit_moves)}
    for name, (key, dtype, _) in _ARRAYS.items():
        game[key] = getattr(r, name).astype(dtype).tobytes()
    for name, (key, _) in _SCALARS.items():
        game[key] = getattr(r, name)
    return game


def encode_batch(records: Iterable[GameRecord], compress: bool = True) -> bytes:
    """Serialise records as one msgpack map (see the module docstring), lz4-framed if ``compress``."""
    games = []
    for i, r in enumerate(records):
        if not isinstance(r, GameRecord):
            raise RecordError(f"game {i}: expected a GameRecord, got {type(r).__name__}")
        games.append(_game_to_wire(r))
    payload = msgpack.packb({"v": FORMAT_VERSION, "g": games}, use_bin_type=True)
    if not compress:
        return payload
    return lz4.frame.compress(
        payload, compression_level=COMPRESSION_LEVEL, store_size=True, content_checksum=True
    )


def decompressed_limit(compressed: int, max_bytes: int) -> int:
    """The most bytes an lz4 frame of ``compressed`` bytes may decompress to: ``MAX_RATIO`` times its size
    (and ``RATIO_SLACK``), never above ``max_bytes``."""
    return min(max_bytes, MAX_RATIO * compressed + RATIO_SLACK)


def _decompress(data: bytes, max_bytes: int) -> bytes:
    """Decompress one lz4 frame in steps, never holding more than ``decompressed_limit`` (+ one step)."""
    limit = decompressed_limit(len(data), max_bytes)
    try:
        declared = lz4.frame.get_frame_info(data)["content_size"]  # 0: not stored
    except (RuntimeError, ValueError) as e:
        raise RecordError(f"corrupt lz4 frame header: {e}") from None
    if declared > limit:
        raise RecordError(f"lz4 frame declares {declared} bytes, above the limit of {limit}")
    decompressor = lz4.frame.LZ4FrameDecompressor()
    parts, total, step = [], 0, (declared + 1 if declared else DECOMPRESS_STEP)
    try:
        while True:
            out = decompressor.decompress(data if not parts else b"", max_length=min(step, limit + 1 - total))
            parts.append(out)
            total += len(out)
            if total > limit:
                raise RecordError(f"lz4 frame decompresses to more than the limit of {limit} bytes")
            if decompressor.eof or decompressor.needs_input:
                break
            step = DECOMPRESS_STEP
    except RuntimeError as e:
        raise RecordError(f"corrupt lz4 frame: {e}") from None
    if not decompressor.eof:
        raise RecordError("truncated lz4 frame (no end mark)")
    if decompressor.unused_data:
        raise RecordError(f"{len(decompressor.unused_data)} trailing bytes after the lz4 frame")
    return b"".join(parts) if len(parts) > 1 else parts[0]


_CONTAINERS = frozenset(range(0x80, 0xA0)) | {0xDC, 0xDD, 0xDE, 0xDF}  # msgpack map and array headers
_MAPS = frozenset(range(0x80, 0x90)) | {0xDE, 0xDF}
_ARRAYS_HDR = frozenset(range(0x90, 0xA0)) | {0xDC, 0xDD}


class _Reader:
    """The batch's msgpack read by its schema: containers only where the schema has them (the top map, the
    list of games, each game's map), every other value a scalar unpacked within the limits. Nothing is
    nested deeper than three levels and no object is built that the schema does not hold."""

    def __init__(self, data: bytes, max_games: int, max_bytes: int):
        self.data = data
        self.unpacker = msgpack.Unpacker(None, raw=False, strict_map_key=True, max_buffer_size=max(len(data), 1),
                                         max_bin_len=max_bytes, max_str_len=MAX_STR_LEN, max_array_len=max_games,
                                         max_map_len=MAX_GAME_KEYS, max_ext_len=0)
        self.unpacker.feed(data)

    def _peek(self) -> int:
        at = self.unpacker.tell()
        if at >= len(self.data):
            raise RecordError("batch: not valid msgpack within limits: incomplete input (truncated)")
        return self.data[at]

    def map(self, where: str, limit: int) -> int:
        if self._peek() not in _MAPS:
            raise RecordError(f"{where}: expected a map, got {self._kind()}")
        n = self._header(self.unpacker.read_map_header)
        if n > limit:
            raise RecordError(f"{where}: a map of {n} entries, above the limit of {limit}")
        return n

    def array(self, where: str, limit: int) -> int:
        if self._peek() not in _ARRAYS_HDR:
            raise RecordError(f"{where}: expected a list, got {self._kind()}")
        n = self._header(self.unpacker.read_array_header)
        if n > limit:
            raise RecordError(f"{where}: a list of {n} entries, above the limit of max_array_len={limit}")
        return n

    def scalar(self, where: str, expected: str = "a single value"):
        """One value that is not a map or a list (a nested container here is refused, not built)."""
        if self._peek() in _CONTAINERS:
            raise RecordError(f"{where}: expected {expected}, got {self._kind()}")
        return self._header(self.unpacker.unpack)

    def key(self, where: str) -> str:
        key = self.scalar(f"{where}: a key")
        if type(key) is not str:
            raise RecordError(f"batch: not valid msgpack within limits: {where}: map key {str(key)[:40]!r} is not a str")
        return key

    def end(self) -> None:
        if self.unpacker.tell() != len(self.data):
            raise RecordError(f"batch: not valid msgpack within limits: ExtraData: "
                              f"{len(self.data) - self.unpacker.tell()} trailing bytes")

    def _kind(self) -> str:
        b = self._peek()
        return "dict" if b in _MAPS else "list" if b in _ARRAYS_HDR else "a single value"

    @staticmethod
    def _header(read):
        try:
            return read()
        except msgpack.OutOfData:
            raise RecordError("batch: not valid msgpack within limits: incomplete input (truncated)") from None
        except (ValueError, msgpack.UnpackException) as e:  # FormatError, limits, truncation (OutOfData)
            raise RecordError(f"batch: not valid msgpack within limits: {type(e).__name__}: {e}") from None


def _game_from_wire(game: object) -> GameRecord:
    if not isinstance(game, dict):
        raise RecordError(f"expected a map, got {type(game).__name__}")
    missing, unknown = GAME_KEYS - game.keys(), game.keys() - GAME_KEYS
    if missing or unknown:
        raise RecordError(f"missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    for key in _COUNT_KEYS:
        if type(game[key]) is not int or game[key] < 0:
            raise RecordError(f"count {key!r}: expected a non-negative int, got {game[key]!r}")
    t, k = game["t"], game["K"]
    values = {}
    for name, (key, dtype, length) in _ARRAYS.items():
        raw, itemsize, want = game[key], np.dtype(dtype).itemsize, length(t, k)
        if not isinstance(raw, bytes):
            raise RecordError(f"field {name!r} (key {key!r}): expected bin, got {type(raw).__name__}")
        if len(raw) % itemsize:
            raise RecordError(f"field {name!r} (key {key!r}): length {len(raw)} is not a multiple of {itemsize}")
        if len(raw) != want * itemsize:
            raise RecordError(
                f"field {name!r} (key {key!r}): {len(raw) // itemsize} items, declared {want} (t={t}, K={k})"
            )
        values[name] = np.frombuffer(raw, dtype=dtype)
    values.update({name: game[key] for name, (key, _) in _SCALARS.items()})
    return GameRecord(**values)  # checks the scalars' types and every invariant


def decode_batch(
    data: bytes, max_games: int = DEFAULT_MAX_GAMES, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[GameRecord]:
    """Inverse of ``encode_batch``; refuses batches over ``max_bytes`` (decompressed) or ``max_games``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise RecordError(f"batch: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise RecordError(f"batch: {len(data)} bytes, above the limit of {max_bytes}")
    if data[:4] == LZ4_MAGIC:
        data = _decompress(data, max_bytes)
    elif not data or not (0x80 <= data[0] <= 0x8F or data[0] in (0xDE, 0xDF)):
        raise RecordError("batch: neither an lz4 frame nor a msgpack map")
    reader = _Reader(data, max_games, max_bytes)
    top = {}
    for _ in range(reader.map("batch", 2)):
        key = reader.key("batch")
        if key in top or key not in ("v", "g"):
            raise RecordError("batch: expected a map with keys 'v' (version) and 'g' (games)")
        if key == "v":
            top["v"] = reader.scalar("batch 'v'")
            if top["v"] != FORMAT_VERSION or type(top["v"]) is not int:
                raise RecordError(f"batch: format version {top['v']!r} is not supported (expected {FORMAT_VERSION})")
            continue
        if reader._peek() in _MAPS:
            raise RecordError("batch: 'g' must be a list of games, got dict")
        games = []
        for i in range(reader.array("batch: 'g'", max_games)):
            if reader._peek() not in _MAPS:
                raise RecordError(f"game {i}: expected a map, got {reader._kind()}")
            game = {}
            for _ in range(reader.map(f"game {i}", MAX_GAME_KEYS)):
                key = reader.key(f"game {i}")
                if key in game:
                    raise RecordError(f"game {i}: key {key!r} twice")
                name, expected = _FIELD_OF.get(key, (key, "a single value"))
                game[key] = reader.scalar(f"game {i}: field {name!r} (key {key!r})", expected)
            games.append(game)
        top["g"] = games
    reader.end()
    if set(top) != {"v", "g"}:
        raise RecordError("batch: expected a map with keys 'v' (version) and 'g' (games)")
    batch = top
    records = []
    for i, game in enumerate(batch["g"]):
        try:
            records.append(_game_from_wire(game))
        except RecordError as e:
            raise RecordError(f"game {i}: {e}") from None
    return records
