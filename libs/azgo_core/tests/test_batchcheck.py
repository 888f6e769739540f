"""The fast batch check against its definition: ``decode_batch`` plus ``verify.check_record``.

``scan_batch`` must accept a batch exactly when the slow path does (never one it refuses:
that would let a bad batch into the store), on real self-play games, on games with every
kind of illegal move, on every kind of lie about visits and results, and on batches mutated
field by field and byte by byte.
"""

from __future__ import annotations

import math
import random

import lz4.frame
import msgpack
import numpy as np
import pytest

from azgo_core.batchcheck import scan_batch
from azgo_core.position import IllegalMove, Position
from azgo_core.records import GameRecord, RecordError, decode_batch, encode_batch
from azgo_core.search import SearchConfig, uniform_evaluator
from azgo_core.selfplay import SelfPlayConfig, SelfPlayRunner
from azgo_core.verify import check_record

MAX_GAMES, MAX_BYTES = 50, 1 << 20


def slow_accepts(blob: bytes, size: int) -> bool:
    """The definition: the batch decodes, every game is on ``size`` and tells the truth (``check_record``)."""
    try:
        records = decode_batch(blob, max_games=MAX_GAMES, max_bytes=MAX_BYTES)
        for r in records:
            if r.board_size != size:
                return False
            check_record(r)
    except RecordError:
        return False
    return True


def honest(size: int, moves: list[int], **kw) -> GameRecord:
    """A record of ``moves`` (each its own search's one visit) with the result its replay gives: the count of
    an ended game, else a resignation by the side to move (moves up to the first illegal one decide)."""
    position = Position(size, 7.5)
    try:
        for move in moves:
            position.play(move)
    except IllegalMove:
        pass
    if position.is_over:
        result = dict(winner=position.winner(), score=position.score())
    else:
        result = dict(winner=3 - position.to_play, resigned=True)
    return GameRecord.from_visits(size, 7.5, moves, [([m], [1]) for m in moves], **{**result, **kw})


def fast_accepts(blob: bytes, size: int) -> bool:
    return scan_batch(blob, size, MAX_GAMES, MAX_BYTES) is not None


@pytest.fixture(scope="module")
def played() -> list[GameRecord]:
    cfg = SelfPlayConfig(board_size=5, komi=7.5, parallel_games=6, batch_size=8,
                         search=SearchConfig(visits=8, cheap_visits=4, full_search_prob=0.5))
    return SelfPlayRunner(cfg, uniform_evaluator, model_generation=3, worker_id="w/0", seed=5).play(6)


def test_selfplay_batches_are_accepted_with_their_columns(played):
    for compress in (True, False):
        blob = encode_batch(played, compress=compress)
        scan = scan_batch(blob, 5, MAX_GAMES, MAX_BYTES)
        assert scan is not None and scan.games == 6
        assert scan.num_moves.tolist() == [r.num_moves for r in played]
        assert scan.positions == sum(r.num_moves for r in played)
        assert scan.komi.tolist() == [7.5] * 6 and scan.model_generation.tolist() == [3] * 6
        assert scan.worker_id == ["w/0"] * 6
    assert scan_batch(encode_batch(played), 7, MAX_GAMES, MAX_BYTES) is None  # another board size
    assert scan_batch(encode_batch(played), 5, 5, MAX_BYTES) is None  # above max_games


def random_games(rng: random.Random, size: int, n: int) -> tuple[list[list[int]], dict[str, int]]:
    """``n`` random games, most of them ending in one illegal move of a random kind; the kinds met."""
    games, kinds = [], {"legal": 0, "occupied": 0, "suicide": 0, "superko": 0, "game over": 0, "move cap": 0}
    area = size * size
    for _ in range(n):
        position, moves = Position(size, 7.5), []
        inject = rng.random() < 0.8
        after = rng.randrange(0, 2 * area)
        while True:
            if position.is_over:
                if inject:  # a move after two passes or at the move cap
                    moves.append(rng.randrange(area + 1))
                    kinds["move cap" if position.n_moves >= position.move_cap else "game over"] += 1
                else:
                    kinds["legal"] += 1
                break
            legal = np.flatnonzero(position.legal_mask())
            stones = np.flatnonzero(position.stones())
            empty_illegal = [p for p in np.flatnonzero(position.stones() == 0) if p not in set(legal.tolist())]
            if inject and len(moves) >= after:
                if empty_illegal and rng.random() < 0.9:
                    move = int(rng.choice(empty_illegal))
                    kinds[position.why_illegal(move)] += 1
                    moves.append(move)
                    break
                if len(stones) and rng.random() < 0.05:
                    moves.append(int(rng.choice(stones.tolist())))
                    kinds["occupied"] += 1
                    break
            pass_now = len(legal) == 1 or rng.random() < 0.03
            move = area if pass_now else int(rng.choice(legal[legal != area].tolist()))
            position.play(move)
            moves.append(move)
        games.append(moves)
    return games, kinds


@pytest.mark.parametrize("size", [5, 7])
def test_replay_agrees_with_position_on_every_kind_of_illegal_move(size):
    games, kinds = random_games(random.Random(size), size, 400)
    assert all(count > 0 for count in kinds.values()), kinds  # every verdict was exercised
    verdicts = []
    for moves in games:
        blob = encode_batch([honest(size, moves)])
        verdicts.append(slow_accepts(blob, size))
        assert fast_accepts(blob, size) == verdicts[-1], moves
    assert verdicts.count(True) == kinds["legal"]  # the honest results of the legal games are accepted
    # one illegal game spoils a batch of legal ones
    legal = [honest(size, g) for g in games[:60]]
    mixed = encode_batch(legal)
    assert fast_accepts(mixed, size) == slow_accepts(mixed, size) is False


def wire(records: list[GameRecord]) -> dict:
    return msgpack.unpackb(encode_batch(records, compress=False), raw=False)


def pack(batch) -> bytes:
    return msgpack.packb(batch, use_bin_type=True)


def arr(values, dtype) -> bytes:
    return np.asarray(values, dtype=dtype).tobytes()


# field mutations of game 1 (a 5x5 self-play game): (name, key, new value or a function of the game)
GAME_MUTATIONS = [
    *[(f"drop {k}", k, KeyError) for k in ("t", "K", "m", "o", "vm", "vc", "f", "q", "n", "k", "r", "w", "s", "x",
                                            "gen", "wid", "seed", "cv")],
    ("extra key", "zz", 1),
    *[(f"{k} as {v!r}", k, v) for k in ("t", "K", "n", "w", "gen", "seed")
      for v in (None, True, 1.0, "1", -1, 2**63, 2**64 - 1, -(2**63))],
    *[(f"{k} as {v!r}", k, v) for k in ("k", "s") for v in (None, True, "7.5", math.nan, math.inf, -math.inf, 400, 7)],
    ("komi 25", "k", 25.0), ("komi 25.5", "k", 25.5), ("komi -26", "k", -26),
    *[(f"x as {v!r}", "x", v) for v in (None, 0, 1, "yes")],
    *[(f"{k} as {v!r}", k, v) for k in ("r", "wid", "cv") for v in (None, b"bytes", 7, "", "é" * 512, "x" * 1025)],
    ("n 7", "n", 7), ("t +1", "t", lambda g: g["t"] + 1), ("K +1", "K", lambda g: g["K"] + 1),
    *[(f"{k} bytes short", k, lambda g, k=k: g[k][:-1]) for k in ("m", "o", "vm", "vc", "f", "q")],
    *[(f"{k} as str", k, lambda g, k=k: g[k].decode("latin-1")) for k in ("m", "f")],
    ("move -1", "m", lambda g: arr([-1], "<i2") + g["m"][2:]),
    ("move 26", "m", lambda g: arr([26], "<i2") + g["m"][2:]),
    ("move pass", "m", lambda g: arr([25], "<i2") + g["m"][2:]),
    ("move repeated", "m", lambda g: g["m"][:2] * 2 + g["m"][4:]),
    ("visit move -1", "vm", lambda g: arr([-1], "<i2") + g["vm"][2:]),
    ("visit move 26", "vm", lambda g: arr([26], "<i2") + g["vm"][2:]),
    ("visit count -1", "vc", lambda g: arr([-1], "<i4") + g["vc"][4:]),
    ("visit count 2**31-1", "vc", lambda g: arr([2**31 - 1], "<i4") + g["vc"][4:]),
    ("full_search 2", "f", lambda g: b"\x02" + g["f"][1:]),
    *[(f"root value {v}", "q", lambda g, v=v: arr([v], "<f4") + g["q"][4:])
      for v in (1.0, -1.0, 1.0000001, -1.5, math.nan, math.inf, -math.inf)],
    ("offsets start at 1", "o", lambda g: arr([1], "<i4") + g["o"][4:]),
    ("offsets end short", "o", lambda g: g["o"][:-4] + arr([g["K"] - 1], "<i4")),
    ("offsets dip", "o", lambda g: g["o"][:4] + arr([2**31 + 5], "<u4") + g["o"][8:]),
    ("winner 3", "w", 3), ("winner 0", "w", 0), ("winner flipped", "w", lambda g: 3 - g["w"] if g["w"] else 1),
    ("score nan", "s", math.nan), ("score 0", "s", 0.0), ("score flipped", "s", lambda g: -g["s"]),
    ("resigned", "x", True),
    ("resigned, nan score", "s", math.nan, ("x", True)),
    ("gen 2**63-1", "gen", 2**63 - 1),
    # lies that decode (verify.check_record)
    ("score +1", "s", lambda g: g["s"] + 1), ("score 1e300", "s", 1e300), ("rules japanese", "r", "japanese"),
    ("visit count 2**20", "vc", lambda g: arr([2**20], "<i4") + g["vc"][4:]),
    ("visit count 2**20+1", "vc", lambda g: arr([2**20 + 1], "<i4") + g["vc"][4:]),
    ("visits all zero", "vc", lambda g: b"\0" * len(g["vc"])),
    ("first child twice", "vm", lambda g: g["vm"][:2] * 2 + g["vm"][4:]),
    ("not resigned, no count", "s", math.nan, ("w", 0)),
]


def mutate(game: dict, key, value, also=None) -> dict:
    game = dict(game)
    if value is KeyError:
        del game[key]
    else:
        game[key] = value(game) if callable(value) else value
    if also:
        game[also[0]] = also[1]
    return game


def test_field_mutations_get_the_same_verdict(played):
    base = wire(played[:3])
    verdicts = {}
    for name, key, value, *also in GAME_MUTATIONS:
        batch = {"v": base["v"], "g": [base["g"][0], mutate(base["g"][1], key, value, *also), base["g"][2]]}
        blob = pack(batch)
        slow = slow_accepts(blob, 5)
        assert fast_accepts(blob, 5) == slow, name
        assert fast_accepts(lz4.frame.compress(blob, store_size=True, content_checksum=True), 5) == slow, name
        verdicts[name] = slow
    # accepted: what changes no claim (gen, seed, strings, ...); a changed komi or score is a false result
    assert sum(verdicts.values()) >= 8 and sum(not v for v in verdicts.values()) >= 120, verdicts
    assert not any(verdicts[k] for k in ("score +1", "score 1e300", "rules japanese", "visit count 2**20+1",
                                         "visits all zero", "first child twice", "not resigned, no count"))


def test_batch_level_mutations_get_the_same_verdict(played):
    base = wire(played[:3])
    g = base["g"]
    cases = {
        "valid": pack(base),
        "version 2": pack({"v": 2, "g": g}),
        "version True": pack({"v": True, "g": g}),
        "version 1.0": pack({"v": 1.0, "g": g}),
        "g first": pack({"g": g, "v": 1}),
        "single floats": msgpack.packb(base, use_bin_type=True, use_single_float=True),
        "no games": pack({"v": 1, "g": []}),
        "games a map": pack({"v": 1, "g": {"a": 1}}),
        "extra key": pack({"v": 1, "g": g, "x": 1}),
        "a list": pack([1, g]),
        "trailing byte": pack(base) + b"\x00",
        "truncated": pack(base)[:-1],
        "games above the limit": pack({"v": 1, "g": g * 17}),
        "a game not a map": pack({"v": 1, "g": [g[0], [1, 2], g[2]]}),
        "invalid utf-8 worker": pack({"v": 1, "g": [mutate(g[0], "wid", "ab")]}).replace(b"\xa3wid\xa2ab",
                                                                                         b"\xa3wid\xa2\xff\xfe"),
        "empty": b"",
        "not msgpack": b"\x00\x01\x02",
    }
    lz = lz4.frame.compress(cases["valid"], store_size=True, content_checksum=True)
    cases["lz4"] = lz
    cases["lz4 without content size"] = lz4.frame.compress(cases["valid"], store_size=False)
    cases["lz4 truncated"] = lz[:-3]
    cases["lz4 trailing"] = lz + b"\x00"
    cases["lz4 corrupt checksum"] = lz[:-1] + bytes([lz[-1] ^ 0xFF])
    for name, blob in cases.items():
        slow = slow_accepts(blob, 5)
        # valid, but the fast path reads only encode_batch's order and frames that declare their size
        if name in ("g first", "lz4 without content size"):
            assert slow and not fast_accepts(blob, 5)
            continue
        assert fast_accepts(blob, 5) == slow, name
    assert fast_accepts(cases["valid"], 5) and fast_accepts(lz, 5) and fast_accepts(cases["single floats"], 5)
    assert not slow_accepts(cases["invalid utf-8 worker"], 5)


def test_random_byte_flips_are_never_accepted_when_the_slow_path_refuses(played):
    """Fuzz: the fast path may refuse more (then the slow path decides), never accept more."""
    blob = encode_batch(played[:2], compress=False)
    rng = random.Random(7)
    agree = accepted = 0
    for _ in range(300):
        data = bytearray(blob)
        for _ in range(rng.choice((1, 1, 2, 4))):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = bytes(data)
        slow, fast = slow_accepts(data, 5), fast_accepts(data, 5)
        assert slow or not fast, data.hex()
        agree += slow == fast
        accepted += fast
    print(f"{agree} of 300 verdicts agree, {accepted} accepted")
    assert accepted > 0 and agree >= 290  # flips in moves and values land on both sides


def test_duplicate_keys_are_refused_by_both(played):
    """A game map with a repeated key is refused (which value would count?), by both paths."""
    raw = encode_batch(played[:1], compress=False)
    header = b"\xde\x00\x12"  # the game's map16 of 18 entries, the last object of a one-game batch
    assert raw.count(header) == 1
    dup = raw.replace(header, b"\xde\x00\x13") + msgpack.packb("gen") + msgpack.packb(3)  # a 19th: "gen" again
    assert not slow_accepts(dup, 5) and not fast_accepts(dup, 5)
    with pytest.raises(RecordError, match="game 0: key 'gen' twice"):
        decode_batch(dup)
