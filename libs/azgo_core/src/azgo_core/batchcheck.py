"""A fast check of an encoded game batch: one compiled pass over the decompressed bytes.

``records.decode_batch`` builds a ``GameRecord`` per game (a few dozen numpy calls each) and
``Position`` replays a game one Python call per move: fine for the learner, far too slow for
a broker taking tens of thousands of games a second. ``scan_batch`` accepts exactly the
batches that ``decode_batch`` decodes, whose games are all on one board size and legal move
by move (Tromp-Taylor: no suicide, positional superko, nothing after two passes or past the
move cap), and returns a few of their columns. For anything else it returns None and the
caller runs the slow path, which names what is wrong. So this can only ever speed up an
acceptance; the slow path stays the definition of a valid batch (the tests hold the two
against each other, mutation by mutation).

``_scan`` (compiled) reads the msgpack of the batch in place: the top map ``{"v", "g"}``, each
game's map of the 18 keys of ``records`` (any order, each once, with the types msgpack would
decode for them, within ``decode_batch``'s limits), then ``GameRecord``'s checks on the
scalars and on the raw little-endian arrays, then replays the moves and checks what the game
claims as ``verify.check_record`` does (each search's children legal there, listed once, the
totals, the played move visited, the result against the final position). A move is played
first and judged after: occupied before it; suicide if its group has no liberty once the
captures are off the board; superko if the new position's hash was seen before. That is the
verdict of ``board.check_move`` then ``play_move``, with less work. Only the strings go back
to Python, to be decoded as UTF-8 as msgpack would. The kernels release the GIL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import lz4.frame
import numpy as np
from numba import njit

from . import board as B
from .coords import MAX_SIZE, MIN_SIZE
from .position import zobrist
from .records import FORMAT_VERSION, GAME_KEYS, LZ4_MAGIC, MAX_STR_LEN, MAX_VISITS, decompressed_limit
from .records import RULES as RULE_NAMES

OK = 0
# indices of the keys in _KEYS; the first nine are also the (offset, length) column pairs of ``_scan``'s spans
MOVES, OFFSETS, VMOVES, VCOUNTS, FULL, VALUES, WID, RULES, CV = range(9)
T_, K_, SIZE, KOMI, WINNER, SCORE, RESIGNED, GEN, SEED = range(9, 18)
_KEYS = ("m", "o", "vm", "vc", "f", "q", "wid", "r", "cv", "t", "K", "n", "k", "w", "s", "x", "gen", "seed")
assert frozenset(_KEYS) == GAME_KEYS, "batchcheck reads every key of the records wire format"
_KEY_BYTES = np.frombuffer(b"".join(k.encode() for k in _KEYS), dtype=np.uint8)
_KEY_STARTS = np.cumsum([0] + [len(k) for k in _KEYS]).astype(np.int64)
assert len(RULE_NAMES) == 1, "the compiled check knows one rules string"
_RULESBYTES = np.frombuffer(RULE_NAMES[0].encode(), dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class BatchScan:
    """What ``validate`` needs of a batch that passed ``scan_batch``; G games.

    num_moves int64 [G]; komi float64 [G]; model_generation int64 [G]; worker_id list of G str.
    """

    num_moves: np.ndarray
    komi: np.ndarray
    model_generation: np.ndarray
    worker_id: list[str]

    @property
    def games(self) -> int:
        return len(self.num_moves)

    @property
    def positions(self) -> int:
        return int(self.num_moves.sum())


def scan_batch(data: bytes, board_size: int, max_games: int, max_bytes: int) -> BatchScan | None:
    """A few columns of the batch if ``decode_batch(data, max_games, max_bytes)`` accepts it,
    every game is on ``board_size`` and every move is legal; else None (the slow path says why)."""
    try:
        if not MIN_SIZE <= board_size <= MAX_SIZE:
            return None
        raw = _payload(data, max_bytes)
        if raw is None:
            return None
        buf = np.frombuffer(raw, dtype=np.uint8)
        status, t, komi, generation, spans, uniform = _scan(buf, board_size, max_games, max_bytes, zobrist(board_size),
                                                            _KEY_BYTES, _KEY_STARTS, _RULESBYTES)
        if status != OK:
            return None
        worker = _strings(raw, spans, uniform)
        return None if worker is None else BatchScan(t, komi, generation, worker)
    except Exception:  # whatever goes wrong here, the slow path meets it again and reports it
        return None


def warm_up() -> float:
    """Compile the kernels (or load them from numba's disk cache); returns the seconds it took."""
    from .records import BLACK, GameRecord, encode_batch

    start = time.monotonic()
    moves = [0, 1, MIN_SIZE * MIN_SIZE]  # then white, to move, resigned
    record = GameRecord.from_visits(MIN_SIZE, 7.5, moves, [([m], [1]) for m in moves], winner=BLACK, resigned=True)
    if scan_batch(encode_batch([record]), MIN_SIZE, 1, 1 << 20) is None:
        raise RuntimeError("the fast batch check refuses a valid batch")
    return time.monotonic() - start


def _payload(data, max_bytes: int) -> bytes | None:
    """The msgpack bytes of the batch, as ``decode_batch`` gets them (same limits), or None."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return None
    data = bytes(data)
    if len(data) > max_bytes:
        return None
    if data[:4] != LZ4_MAGIC:
        return data if data and (0x80 <= data[0] <= 0x8F or data[0] in (0xDE, 0xDF)) else None
    # ``records._decompress``, with the output sized by the frame's declared content size
    # (``encode_batch`` stores it; a frame without one goes to the slow path) rather than by the
    # limit: allocating 64 MiB would cost more than the decompression. A frame whose declared
    # size is a lie stops short and is refused.
    limit = decompressed_limit(len(data), max_bytes)
    declared = lz4.frame.get_frame_info(data)["content_size"]  # 0: not stored
    if declared > limit or not declared:  # not declared: the slow path decompresses it step by step
        return None
    decompressor = lz4.frame.LZ4FrameDecompressor()
    out = decompressor.decompress(data, max_length=declared + 1)
    if len(out) > limit or not decompressor.eof or decompressor.unused_data:
        return None
    return out


def _strings(raw: bytes, spans: np.ndarray, uniform: bool) -> list[str] | None:
    """The games' worker ids, every string decoded as msgpack decodes it (UTF-8, strict); None if one fails."""
    games = len(spans)
    rows = range(min(games, 1)) if uniform else range(games)  # uniform: every game's strings are game 0's
    worker = []
    for g in rows:
        for col in (WID, RULES, CV):
            start, length = int(spans[g, 2 * col]), int(spans[g, 2 * col + 1])
            try:
                text = raw[start:start + length].decode("utf-8")
            except UnicodeDecodeError:
                return None
            if col == WID:
                worker.append(text)
    return worker * games if uniform else worker


# --- compiled ------------------------------------------------------------------------------
@njit(cache=True, nogil=True, inline="always")
def _be(buf, pos, n):
    """Big-endian unsigned integer of ``n`` bytes at ``pos``."""
    v = np.uint64(0)
    for i in range(n):
        v = (v << np.uint64(8)) | np.uint64(buf[pos + i])
    return v


@njit(cache=True, nogil=True)
def _int(buf, pos):
    """An msgpack int at ``pos``: (kind, value, next pos); kind 0 not an int, 1 int64 value, 2 at least 2**63."""
    end = buf.shape[0]
    b = buf[pos]
    if b <= 0x7F:
        return 1, np.int64(b), pos + 1
    if b >= 0xE0:
        return 1, np.int64(b) - 256, pos + 1
    if 0xCC <= b <= 0xD3:
        n = 1 << ((b - 0xCC) & 3)
        if pos + 1 + n > end:
            return 0, np.int64(0), pos
        u = _be(buf, pos + 1, n)
        if b <= 0xCF:  # unsigned
            if n == 8 and u >= np.uint64(1) << np.uint64(63):
                return 2, np.int64(0), pos + 1 + n
            return 1, np.int64(u), pos + 1 + n
        if n == 8:
            return 1, np.int64(u), pos + 9  # two's complement, reinterpreted
        v = np.int64(u)
        if v >= np.int64(1) << (8 * n - 1):
            v -= np.int64(1) << (8 * n)
        return 1, v, pos + 1 + n
    return 0, np.int64(0), pos


@njit(cache=True, nogil=True)
def _number(buf, pos, scratch32, scratch64):
    """An msgpack int or float at ``pos`` as a float: (ok, value, next pos)."""
    b = buf[pos]
    if b == 0xCA or b == 0xCB:
        n = 4 if b == 0xCA else 8
        if pos + 1 + n > buf.shape[0]:
            return False, 0.0, pos
        u = _be(buf, pos + 1, n)
        if n == 4:
            scratch32[0] = np.uint32(u)
            return True, np.float64(scratch32.view(np.float32)[0]), pos + 5
        scratch64[0] = u
        return True, scratch64.view(np.float64)[0], pos + 9
    kind, v, nxt = _int(buf, pos)
    if kind == 0:
        return False, 0.0, pos
    return True, (np.float64(v) if kind == 1 else 1.8446744073709552e19), nxt


@njit(cache=True, nogil=True)
def _container(buf, pos, fix, b16, b32):
    """Length of an msgpack map (fix=0x80, 0xDE, 0xDF) or array (0x90, 0xDC, 0xDD) header: (length or -1, next pos)."""
    b = buf[pos]
    if fix <= b <= fix + 15:
        return np.int64(b - fix), pos + 1
    if b == b16 and pos + 3 <= buf.shape[0]:
        return np.int64(_be(buf, pos + 1, 2)), pos + 3
    if b == b32 and pos + 5 <= buf.shape[0]:
        return np.int64(_be(buf, pos + 1, 4)), pos + 5
    return np.int64(-1), pos


@njit(cache=True, nogil=True)
def _span(buf, pos, is_str, max_len):
    """An msgpack str (``is_str``) or bin at ``pos``: (start, length or -1, next pos)."""
    b = buf[pos]
    n = -1
    hdr = 1
    if is_str and 0xA0 <= b <= 0xBF:
        n = b - 0xA0
    elif b == (0xD9 if is_str else 0xC4):
        hdr = 2
    elif b == (0xDA if is_str else 0xC5):
        hdr = 3
    elif b == (0xDB if is_str else 0xC6):
        hdr = 5
    else:
        return pos, np.int64(-1), pos
    if hdr > 1:
        if pos + hdr > buf.shape[0]:
            return pos, np.int64(-1), pos
        n = np.int64(_be(buf, pos + 1, hdr - 1))
    start = pos + hdr
    if n > max_len or start + n > buf.shape[0]:
        return pos, np.int64(-1), pos
    return start, np.int64(n), start + n


@njit(cache=True, nogil=True)
def _key(buf, start, length, key_bytes, key_starts):
    """Index of the key spelt by ``buf[start:start+length]`` in ``_KEYS``, or -1."""
    for k in range(key_starts.shape[0] - 1):
        a, b = key_starts[k], key_starts[k + 1]
        if b - a == length:
            same = True
            for i in range(length):
                if buf[start + i] != key_bytes[a + i]:
                    same = False
                    break
            if same:
                return k
    return -1


@njit(cache=True, nogil=True)
def _scan(buf, N, max_games, max_bytes, zob, key_bytes, key_starts, rules_bytes):
    """(status, t [G], komi [G], generation [G], spans int64 [G, 18], uniform strings); status OK or 1."""
    empty_i = np.zeros(0, dtype=np.int64)
    fail = (1, empty_i, np.zeros(0, dtype=np.float64), empty_i, np.zeros((0, 18), dtype=np.int64), False)
    s32 = np.zeros(1, dtype=np.uint32)
    s64 = np.zeros(1, dtype=np.uint64)
    end = buf.shape[0]
    # the top map {"v": FORMAT_VERSION, "g": [game, ...]} in encode_batch's order (another: the slow path decides)
    if end == 0:
        return fail
    n, pos = _container(buf, 0, 0x80, 0xDE, 0xDF)
    if n != 2 or pos >= end:
        return fail
    start, length, pos = _span(buf, pos, True, MAX_STR_LEN)
    if length != 1 or buf[start] != 0x76 or pos >= end:  # "v"
        return fail
    kind, v, pos = _int(buf, pos)
    if kind != 1 or v != FORMAT_VERSION or pos >= end:
        return fail
    start, length, pos = _span(buf, pos, True, MAX_STR_LEN)
    if length != 1 or buf[start] != 0x67 or pos >= end:  # "g"
        return fail
    games, pos = _container(buf, pos, 0x90, 0xDC, 0xDD)
    if games < 0 or games > max_games:
        return fail
    area = N * N
    t = np.zeros(games, dtype=np.int64)
    komi = np.zeros(games, dtype=np.float64)
    generation = np.zeros(games, dtype=np.int64)
    spans = np.zeros((games, 18), dtype=np.int64)
    scores = np.zeros(games, dtype=np.float64)
    winners = np.zeros(games, dtype=np.int64)
    resigns = np.zeros(games, dtype=np.bool_)
    nkeys = key_starts.shape[0] - 1
    for g in range(games):
        if pos >= end:
            return fail
        n, pos = _container(buf, pos, 0x80, 0xDE, 0xDF)
        if n != nkeys:
            return fail
        seen = 0
        k_count = winner = -1
        score = 0.0
        resigned = False
        for _ in range(nkeys):
            if pos >= end:
                return fail
            start, length, pos = _span(buf, pos, True, MAX_STR_LEN)
            if length < 0 or pos >= end:
                return fail
            key = _key(buf, start, length, key_bytes, key_starts)
            if key < 0 or seen & (1 << key):
                return fail
            seen |= 1 << key
            if key <= CV:  # an array (bin) or a string
                start, length, pos = _span(buf, pos, key >= WID, max_bytes if key < WID else MAX_STR_LEN)
                if length < 0:
                    return fail
                spans[g, 2 * key] = start
                spans[g, 2 * key + 1] = length
            elif key == KOMI or key == SCORE:  # "k" komi, "s" score: float or int
                ok, x, pos = _number(buf, pos, s32, s64)
                if not ok:
                    return fail
                if key == KOMI:
                    komi[g] = x
                else:
                    score = x
            elif key == RESIGNED:  # "x" resigned: bool
                if buf[pos] != 0xC2 and buf[pos] != 0xC3:
                    return fail
                resigned = buf[pos] == 0xC3
                pos += 1
            else:  # "t", "K", "n", "w", "gen", "seed": int
                kind, v, pos = _int(buf, pos)
                if kind == 0 or (kind == 2 and key != SEED) or (v < 0 and key != WINNER):
                    return fail
                if key == T_:
                    t[g] = v
                elif key == K_:
                    k_count = v
                elif key == SIZE and v != N:
                    return fail
                elif key == WINNER:
                    winner = v
                elif key == GEN:
                    generation[g] = v
        # GameRecord's invariants on the scalars; the arrays' lengths against T and K
        T = t[g]
        sp = spans[g]
        if (sp[2 * MOVES + 1] != 2 * T or sp[2 * OFFSETS + 1] != 4 * T + 4 or sp[2 * VMOVES + 1] != 2 * k_count
                or sp[2 * VCOUNTS + 1] != 4 * k_count or sp[2 * FULL + 1] != T or sp[2 * VALUES + 1] != 4 * T):
            return fail
        if not (-area <= komi[g] <= area) or sp[2 * RULES + 1] == 0:  # a nan komi fails the comparison
            return fail
        if winner != 0 and winner != B.BLACK and winner != B.WHITE:
            return fail
        if np.isinf(score) or (resigned and (winner == 0 or not np.isnan(score))):
            return fail
        if not np.isnan(score) and winner != (B.BLACK if score > 0 else (B.WHITE if score < 0 else 0)):
            return fail
        if abs(score) > area + abs(komi[g]):  # nan compares false
            return fail
        if sp[2 * RULES + 1] != rules_bytes.shape[0]:
            return fail
        for i in range(rules_bytes.shape[0]):
            if buf[sp[2 * RULES] + i] != rules_bytes[i]:
                return fail
        scores[g], winners[g], resigns[g] = score, winner, resigned
        if not _arrays_ok(buf, sp, T, k_count, area):
            return fail
    if pos != end:  # trailing bytes: msgpack's ExtraData
        return fail
    uniform = True
    for g in range(1, games):
        for col in (WID, RULES, CV):
            a, b, n = spans[0, 2 * col], spans[g, 2 * col], spans[g, 2 * col + 1]
            if n != spans[0, 2 * col + 1]:
                uniform = False
            else:
                for i in range(n):
                    if buf[a + i] != buf[b + i]:
                        uniform = False
                        break
    for g in range(games):
        if not _replay(buf, spans[g], t[g], N, zob, komi[g], scores[g], winners[g], resigns[g]):
            return fail
    return OK, t, komi, generation, spans, uniform


@njit(cache=True, nogil=True, inline="always")
def _le(buf, pos, n):
    """Little-endian unsigned integer of ``n`` bytes at ``pos``."""
    v = np.int64(0)
    for i in range(n):
        v |= np.int64(buf[pos + i]) << (8 * i)
    return v


@njit(cache=True, nogil=True)
def _arrays_ok(buf, sp, T, K, area):
    """GameRecord's checks of one game's arrays, read in place (little-endian, any alignment)."""
    m, o, vm, vc = sp[2 * MOVES], sp[2 * OFFSETS], sp[2 * VMOVES], sp[2 * VCOUNTS]
    f, q = sp[2 * FULL], sp[2 * VALUES]
    for i in range(T):
        if _le(buf, m + 2 * i, 2) > area:  # negative (as int16: 32768 and above) or off the board
            return False
        if buf[f + i] > 1:  # full_search: 0 or 1
            return False
        bits = _le(buf, q + 4 * i, 4) & 0x7FFFFFFF  # root value: |v| <= 1 or nan
        if 0x3F800000 < bits <= 0x7F800000:
            return False
    if _le(buf, o, 4) != 0 or _le(buf, o + 4 * T, 4) != K:  # CSR offsets rise from 0 to K
        return False
    for i in range(T):
        if _le(buf, o + 4 * i + 4, 4) < _le(buf, o + 4 * i, 4):
            return False
    for i in range(K):
        if _le(buf, vm + 2 * i, 2) > area or _le(buf, vc + 4 * i, 4) > MAX_VISITS:  # on the board, 0..MAX_VISITS
            return False
    return True


@njit(cache=True, nogil=True)
def _replay(buf, sp, T, N, zob, komi, score, winner, resigned):
    """True if the game of ``T`` moves (spans ``sp`` into ``buf``) is legal throughout and its searches and
    result tell the truth (``verify.check_record``)."""
    W = N + 1
    P = (N + 2) * W
    m, o, vm, vc, f = sp[2 * MOVES], sp[2 * OFFSETS], sp[2 * VMOVES], sp[2 * VCOUNTS], sp[2 * FULL]
    cap = 2 * N * N  # Position's default move cap
    s = np.empty(B.scalar_base(P) + B.NUM_SCALARS, dtype=np.int32)
    history = np.empty(cap + 2, dtype=np.uint64)
    bloom = np.zeros(B.BLOOM_WORDS, dtype=np.uint64)
    no_path = np.zeros(1, dtype=np.uint64)
    listed = np.full(N * N + 1, -1, dtype=np.int64)  # the move at which each child was last listed
    B.init_board(s, N)
    h = B.get_hash(s, P)
    history[0] = h
    n_history = 1
    B.bloom_add(bloom, h)
    for i in range(T):
        if s[B.scalar_base(P) + B.PASSES] >= 2 or i >= cap:
            return False  # the game was over
        move = _le(buf, m + 2 * i, 2)
        # the search before the move: legal children, each once, a bounded total, the played move visited
        colour = s[B.scalar_base(P) + B.TO_PLAY]
        total = 0
        played = False
        lo, hi = _le(buf, o + 4 * i, 4), _le(buf, o + 4 * i + 4, 4)
        for j in range(lo, hi):
            child = _le(buf, vm + 2 * j, 2)
            count = _le(buf, vc + 4 * j, 4)
            if listed[child] == i:
                return False  # listed twice
            listed[child] = i
            total += count
            if child == move and count > 0:
                played = True
            if child != N * N:
                q = (child // N + 1) * W + child % N + 1
                if B.check_move(s, N, q, colour, zob, history, n_history, bloom, no_path, 0) != B.LEGAL:
                    return False  # visits on an illegal move
        if total > MAX_VISITS or (hi > lo and not played) or (buf[f + i] == 1 and total == 0):
            return False
        if move == N * N:
            B.play_move(s, N, -1, zob)
            continue
        p = (move // N + 1) * W + move % N + 1
        if s[p] != B.EMPTY:
            return False  # occupied
        B.play_move(s, N, p, zob)
        if s[3 * P + s[2 * P + p]] == 0:
            return False  # suicide: no liberty left once the captures are off the board
        h = B.get_hash(s, P)
        if B.seen_before(h, history, n_history, bloom, no_path, 0):
            return False  # positional superko
        history[n_history] = h
        n_history += 1
        B.bloom_add(bloom, h)
    over = s[B.scalar_base(P) + B.PASSES] >= 2 or T >= cap
    if resigned:  # the side to move resigned: not after the end, and the other side won
        return not over and winner == 3 - s[B.scalar_base(P) + B.TO_PLAY]
    if not over or np.isnan(score):
        return False  # no result, or an ended game without its count
    return score == np.float64(B.area_score(s, N)) - komi
