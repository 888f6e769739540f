"""GameRecord invariants and the msgpack/lz4 batch format: round trips, bounds, errors."""

from __future__ import annotations

import math

import lz4.frame
import msgpack
import numpy as np
import pytest

from azgo_core import coords
from azgo_core.records import (
    FORMAT_VERSION,
    GameRecord,
    RecordError,
    decode_batch,
    encode_batch,
    format_points,
)


def random_record(rng: np.random.Generator, size: int, num_moves: int, **kw) -> GameRecord:
    """A record with random (not necessarily legal) moves and sparse visits; passes included."""
    actions = coords.num_actions(size)
    moves, visits = [], []
    for _ in range(num_moves):
        k = int(rng.integers(1, min(30, actions) + 1))
        children = np.sort(rng.choice(actions, size=k, replace=False))
        counts = rng.multinomial(200 - k, rng.dirichlet(np.full(k, 0.3))) + 1
        visits.append((children, counts))
        moves.append(int(children[np.argmax(counts)]))
    defaults = dict(
        full_search=rng.random(num_moves) < 0.25,
        root_values=np.tanh(rng.normal(size=num_moves)).astype(np.float32),
        winner=2,
        score=-4.5,
        model_generation=int(rng.integers(0, 1000)),
        worker_id=f"host-{size}/gpu0",
        seed=int(rng.integers(0, 2**63)) * 2 + 1,  # above 2**63 half of the time
        code_version="0.1.0+g1234abc",
    )
    defaults.update(kw)
    return GameRecord.from_visits(size, 7.5, moves, visits, **defaults)


def realistic_9x9(rng: np.random.Generator) -> GameRecord:
    """~80 moves, 10-30 visited children per root, playout cap (25% full 600-visit searches)."""
    moves, visits, full = [], [], []
    for _ in range(80):
        is_full = bool(rng.random() < 0.25)
        total = 600 if is_full else 100
        k = int(rng.integers(10, 31))
        children = np.sort(rng.choice(82, size=k, replace=False))
        counts = rng.multinomial(total - k, rng.dirichlet(np.full(k, 0.3))) + 1
        visits.append((children, counts))
        moves.append(int(children[np.argmax(counts)]))
        full.append(is_full)
    return GameRecord.from_visits(
        9, 7.5, moves, visits, full_search=full,
        root_values=np.tanh(rng.normal(size=80)).astype(np.float32),
        winner=1, score=2.5, model_generation=123, worker_id="gpu1-worker-3", seed=99, code_version="0.1.0",
    )


@pytest.fixture
def batch() -> list[GameRecord]:
    rng = np.random.default_rng(1)
    return [
        random_record(rng, 9, 60),
        random_record(rng, 19, 200, winner=0, score=0.0),  # a draw
        random_record(rng, 5, 0, winner=0, score=math.nan),  # empty game, unfinished
        random_record(rng, 13, 31, winner=1, score=math.nan, resigned=True),
        # a game of passes only, a fast search with no recorded visits
        GameRecord.from_visits(7, 0.5, [49, 49], [([49, 3], [5, 1]), ([], [])], full_search=[True, False],
                               winner=2, score=-0.5),
    ]


def wire(records) -> dict:
    """The decoded msgpack map of an uncompressed batch, for tampering."""
    return msgpack.unpackb(encode_batch(records, compress=False))


def assert_same(a: GameRecord, b: GameRecord) -> None:
    """Field-by-field equality, dtypes included (independent of GameRecord.__eq__)."""
    for name in ("board_size", "rules", "winner", "resigned", "model_generation", "worker_id", "seed", "code_version"):
        assert getattr(a, name) == getattr(b, name), name
        assert type(getattr(a, name)) is type(getattr(b, name)), name
    assert a.komi == b.komi and isinstance(b.komi, float)
    assert (a.score == b.score) or (math.isnan(a.score) and math.isnan(b.score))
    for name, dtype in (("moves", np.int16), ("visit_offsets", np.int32), ("visit_moves", np.int16),
                        ("visit_counts", np.int32), ("full_search", np.bool_), ("root_values", np.float32)):
        x, y = getattr(a, name), getattr(b, name)
        assert y.dtype == dtype and x.dtype == dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)  # nan == nan here


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip_is_exact(batch, compress):
    data = encode_batch(batch, compress=compress)
    assert data.startswith(b"\x04\x22\x4d\x18") == compress
    decoded = decode_batch(data)
    assert len(decoded) == len(batch)
    for a, b in zip(batch, decoded):
        assert_same(a, b)
        assert a == b
    assert [r.board_size for r in decoded] == [9, 19, 5, 13, 7]
    assert decoded[2].num_moves == 0 and decoded[2].visit_offsets.tolist() == [0]
    assert math.isnan(decoded[3].score) and decoded[3].resigned
    assert decoded[4].moves.tolist() == [49, 49]


def test_decoded_arrays_are_owned_and_writable(batch):
    decoded = decode_batch(encode_batch(batch))
    decoded[0].moves[0] = 1  # would raise on a read-only view of the msgpack buffer
    assert decoded[0].moves.flags.owndata


def test_empty_batch_round_trips():
    assert decode_batch(encode_batch([])) == []
    assert decode_batch(encode_batch([], compress=False)) == []


def test_eq_sees_every_difference(batch):
    a = batch[0]
    b = decode_batch(encode_batch([a]))[0]
    b.root_values[5] += 0.01
    assert a != b
    c = decode_batch(encode_batch([a]))[0]
    c.seed += 1
    assert a != c


def test_realistic_9x9_record_is_small():
    record = realistic_9x9(np.random.default_rng(7))
    compressed = encode_batch([record])
    plain = encode_batch([record], compress=False)
    k = len(record.visit_moves)
    print(f"\n9x9 record: {record.num_moves} moves, K={k} visit entries: "
          f"{len(plain)} B msgpack, {len(compressed)} B lz4")
    assert 1300 < k < 2500  # the record is as big as the test claims
    assert len(compressed) < 8 * 1024
    assert len(compressed) < 0.7 * len(plain)
    assert decode_batch(compressed) == [record]


# ---------------------------------------------------------------- helpers


def test_visits_and_policy_target():
    r = GameRecord.from_visits(5, 7.5, [12, 25], [([12, 25, 0], [6, 2, 2]), ([25], [1])],
                               root_values=[0.25, -0.5])
    assert r.num_moves == 2
    m, c = r.visits_at(0)
    assert m.dtype == np.int16 and c.dtype == np.int32
    assert m.tolist() == [12, 25, 0] and c.tolist() == [6, 2, 2]
    pi = r.policy_target(0)
    assert pi.dtype == np.float32 and pi.shape == (26,)
    assert pi[12] == pytest.approx(0.6) and pi[25] == pytest.approx(0.2) and pi[0] == pytest.approx(0.2)
    assert pi.sum() == pytest.approx(1.0) and np.count_nonzero(pi) == 3
    assert r.policy_target(1)[25] == 1.0  # pass is the last entry
    with pytest.raises(IndexError, match="move 2"):
        r.visits_at(2)
    with pytest.raises(IndexError):
        r.visits_at(-1)


def test_policy_target_of_unsearched_move_is_refused():
    r = GameRecord.from_visits(5, 7.5, [3], [([], [])], full_search=[False])
    with pytest.raises(RecordError, match="move 0 has no visit counts"):
        r.policy_target(0)


@pytest.mark.parametrize(
    "kw, expected",
    [
        (dict(winner=1, resigned=True), "B+R"),
        (dict(winner=2, resigned=True), "W+R"),
        (dict(winner=2, score=-3.5), "W+3.5"),
        (dict(winner=1, score=12.0), "B+12"),
        (dict(winner=0, score=0.0), "0"),
        (dict(winner=0), "Void"),  # unfinished: nan score
        (dict(winner=1), "B+"),  # a winner without a count (e.g. a forfeit)
    ],
)
def test_result_string(kw, expected):
    assert GameRecord.from_visits(9, 7.5, [], [], **kw).result_string() == expected


def test_format_points():
    assert [format_points(x) for x in (7.5, 3.0, -0.5, 0.0, 361.0, 0.25)] == ["7.5", "3", "-0.5", "0", "361", "0.25"]


# ---------------------------------------------------------------- construction checks


def good_fields() -> dict:
    return dict(
        board_size=9, komi=7.5, rules="tromp-taylor",
        moves=np.array([40, 81], np.int16), visit_offsets=np.array([0, 2, 3], np.int32),
        visit_moves=np.array([40, 41, 81], np.int16), visit_counts=np.array([7, 3, 10], np.int32),
        full_search=np.array([True, False]), root_values=np.array([0.1, -0.2], np.float32),
        winner=2, score=-7.5, resigned=False, model_generation=3, worker_id="w", seed=1, code_version="v",
    )


def test_good_fields_construct():
    r = GameRecord(**good_fields())
    assert r.policy_target(0)[40] == pytest.approx(0.7)


def test_construction_converts_lists_and_numpy_scalars():
    f = good_fields() | dict(moves=[40, 81], full_search=[1, 0], model_generation=np.int64(3), komi=7)
    r = GameRecord(**f)
    assert r.moves.dtype == np.int16 and r.full_search.dtype == np.bool_
    assert type(r.model_generation) is int and r.komi == 7.0 and isinstance(r.komi, float)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(board_size=4), "field 'board_size'.*5 to 19"),
        (dict(board_size=20), "field 'board_size'"),
        (dict(board_size=9.0), "field 'board_size': expected int"),
        (dict(komi=math.inf), "field 'komi'"),
        (dict(rules=""), "field 'rules'"),
        (dict(moves=[40, 82]), "field 'moves': value 82 is above 81"),
        (dict(moves=[40, -1]), "field 'moves': value -1 is below 0"),
        (dict(moves=[40.0, 81.0]), "field 'moves': expected integers"),
        (dict(moves=[[40, 81]]), "field 'moves': expected a 1-D array"),
        (dict(visit_offsets=[0, 2]), "field 'visit_offsets': length 2, expected 3"),
        (dict(visit_offsets=[0, 3, 2]), "field 'visit_offsets': must rise monotonically"),
        (dict(visit_offsets=[1, 2, 3]), "field 'visit_offsets'"),
        (dict(visit_offsets=[0, 1, 2]), "field 'visit_offsets'.*K=3"),
        (dict(visit_moves=[40, 41, 90]), "field 'visit_moves': value 90"),
        (dict(visit_counts=[7, 3]), "field 'visit_counts': length 2, expected 3"),
        (dict(visit_counts=[7, -3, 10]), "field 'visit_counts': value -3"),
        (dict(full_search=[True]), "field 'full_search': length 1"),
        (dict(full_search=[2, 0]), "field 'full_search': expected booleans"),
        (dict(root_values=[0.1, 1.5]), "field 'root_values'.*\\[-1, 1\\]"),
        (dict(root_values=[0.1]), "field 'root_values': length 1"),
        (dict(winner=3), "field 'winner'"),
        (dict(winner=1), "field 'winner': 1 disagrees with score -7.5"),
        (dict(score=math.inf), "field 'score'"),
        (dict(resigned=True), "field 'resigned'"),
        (dict(resigned=1), "field 'resigned': expected bool"),
        (dict(seed=2**64), "field 'seed'"),
        (dict(seed=-1), "field 'seed'"),
        (dict(model_generation=-1), "field 'model_generation'"),
        (dict(worker_id=None), "field 'worker_id': expected str"),
        (dict(code_version="x" * 2000), "field 'code_version': longer"),
    ],
)
def test_construction_rejects(changes, message):
    with pytest.raises(RecordError, match=message):
        GameRecord(**(good_fields() | changes))


def test_from_visits_rejects_mismatches():
    with pytest.raises(RecordError, match="2 entries for 1 moves"):
        GameRecord.from_visits(9, 7.5, [0], [([0], [1]), ([1], [1])])
    with pytest.raises(RecordError, match="move 0 has 2 children but 1 counts"):
        GameRecord.from_visits(9, 7.5, [0], [([0, 1], [1])])


# ---------------------------------------------------------------- decode errors


def test_random_bytes_raise_record_error_only():
    rng = np.random.default_rng(3)
    for i in range(300):
        data = rng.integers(0, 256, size=int(rng.integers(0, 400)), dtype=np.uint8).tobytes()
        if i % 3 == 1:
            data = b"\x04\x22\x4d\x18" + data  # random frame after the lz4 magic
        elif i % 3 == 2:
            data = b"\x82" + data  # random content after a msgpack map header
        with pytest.raises(RecordError):
            decode_batch(data)


@pytest.mark.parametrize("compress", [True, False])
def test_every_truncation_is_refused(batch, compress):
    data = encode_batch(batch[:2], compress=compress)
    for cut in range(0, len(data), 7):
        with pytest.raises(RecordError):
            decode_batch(data[:cut])


def test_truncation_messages():
    data = encode_batch([random_record(np.random.default_rng(0), 9, 40)])
    with pytest.raises(RecordError, match="truncated lz4 frame"):
        decode_batch(data[: len(data) // 2])
    with pytest.raises(RecordError, match="corrupt lz4 frame header"):
        decode_batch(data[:6])
    with pytest.raises(RecordError, match="neither an lz4 frame nor a msgpack map"):
        decode_batch(b"")
    plain = encode_batch([random_record(np.random.default_rng(0), 9, 40)], compress=False)
    with pytest.raises(RecordError, match="incomplete input"):
        decode_batch(plain[:-3])


def test_corruption_inside_the_frame_is_caught_by_the_checksum(batch):
    data = bytearray(encode_batch(batch))
    data[len(data) // 2] ^= 0x40
    with pytest.raises(RecordError, match="corrupt lz4 frame"):
        decode_batch(bytes(data))


def test_trailing_bytes_are_refused(batch):
    with pytest.raises(RecordError, match="trailing bytes after the lz4 frame"):
        decode_batch(encode_batch(batch) + b"\0")
    with pytest.raises(RecordError, match="ExtraData"):
        decode_batch(encode_batch(batch, compress=False) + b"\0")


def test_not_bytes_is_refused():
    with pytest.raises(RecordError, match="expected bytes, got str"):
        decode_batch("hello")  # type: ignore[arg-type]


def test_wrong_version():
    data = msgpack.packb({"v": FORMAT_VERSION + 1, "g": []})
    with pytest.raises(RecordError, match=f"format version {FORMAT_VERSION + 1} is not supported"):
        decode_batch(data)
    with pytest.raises(RecordError, match="format version '1'"):
        decode_batch(msgpack.packb({"v": "1", "g": []}))
    with pytest.raises(RecordError, match="keys 'v' \\(version\\) and 'g'"):
        decode_batch(msgpack.packb({"g": []}))


def test_integer_map_keys_are_refused():
    with pytest.raises(RecordError, match="not valid msgpack"):
        decode_batch(msgpack.packb({1: 1, "g": []}))


def tamper(records, game_index=0, **changes) -> bytes:
    batch = wire(records)
    batch["g"][game_index].update(changes)
    for key in [k for k, v in changes.items() if v is ...]:
        del batch["g"][game_index][key]
    return lz4.frame.compress(msgpack.packb(batch))


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(m=b"\x01" * 17), "game 1: field 'moves' \\(key 'm'\\): length 17 is not a multiple of 2"),
        (dict(t=61), "game 1: field 'moves' \\(key 'm'\\): 60 items, declared 61"),
        (dict(K=5), "game 1: field 'visit_moves' \\(key 'vm'\\): .* items, declared 5"),
        (dict(vc=b"\0" * 8), "game 1: field 'visit_counts' \\(key 'vc'\\): 2 items, declared"),
        (dict(q="floats"), "game 1: field 'root_values' \\(key 'q'\\): expected bin, got str"),
        (dict(m=[1, 2, 3]), "game 1: field 'moves' \\(key 'm'\\): expected bin, got list"),
        (dict(n="9"), "game 1: field 'board_size': expected int, got str"),
        (dict(n=25), "game 1: field 'board_size'"),
        (dict(k=None), "game 1: field 'komi': expected float, got NoneType"),
        (dict(x=0), "game 1: field 'resigned': expected bool, got int"),
        (dict(w=True), "game 1: field 'winner': expected int, got bool"),
        (dict(t=-1), "game 1: count 't': expected a non-negative int"),
        (dict(t=1.0), "game 1: count 't'"),
        (dict(seed=...), "game 1: missing keys \\['seed'\\]"),
        (dict(extra=1), "game 1: .*unknown keys \\['extra'\\]"),
        (dict(m=np.array([0, 1] * 30, "<i2").tobytes()[:-2] + b"\xff\x7f"), "game 1: field 'moves': value 32767"),
        (dict(f=b"\x02" * 60), "game 1: field 'full_search': expected booleans"),
    ],
)
def test_tampered_fields_are_named(changes, message):
    rng = np.random.default_rng(5)
    records = [random_record(rng, 9, 10), random_record(rng, 9, 60)]
    with pytest.raises(RecordError, match=message):
        decode_batch(tamper(records, game_index=1, **changes))


def test_game_that_is_not_a_map():
    batch = wire([])
    batch["g"] = [[1, 2]]
    with pytest.raises(RecordError, match="game 0: expected a map, got list"):
        decode_batch(msgpack.packb(batch))
    batch["g"] = {"a": 1}
    with pytest.raises(RecordError, match="'g' must be a list of games, got dict"):
        decode_batch(msgpack.packb(batch))


def test_too_many_games_is_refused():
    records = [GameRecord.from_visits(5, 0.5, [], []) for _ in range(6)]
    assert len(decode_batch(encode_batch(records), max_games=6)) == 6
    with pytest.raises(RecordError, match="max_array_len"):
        decode_batch(encode_batch(records), max_games=5)


def test_oversize_plain_batch_is_refused(batch):
    data = encode_batch(batch, compress=False)
    with pytest.raises(RecordError, match=f"{len(data)} bytes, above the limit of 100"):
        decode_batch(data, max_bytes=100)


def test_frame_declaring_oversize_content_is_refused():
    bomb = lz4.frame.compress(b"\x80" + b"\0" * 100_000, store_size=True)
    assert len(bomb) < 1000
    with pytest.raises(RecordError, match="declares 100001 bytes, above the limit of 50000"):
        decode_batch(bomb, max_bytes=50_000)


def test_frame_without_size_that_expands_past_the_limit_is_refused():
    bomb = lz4.frame.compress(b"\x80" + b"\0" * 100_000, store_size=False)
    assert lz4.frame.get_frame_info(bomb)["content_size"] == 0  # nothing declared up front
    with pytest.raises(RecordError, match="decompresses to more than the limit of 50000 bytes"):
        decode_batch(bomb, max_bytes=50_000)


def test_bomb_against_the_default_limit():
    """~256 KiB that would expand to 80 MiB; refused after at most 64 MiB + 1 bytes."""
    bomb = lz4.frame.compress(b"\x80" + b"\0" * (80 << 20), store_size=False)
    assert len(bomb) < (1 << 20)
    with pytest.raises(RecordError, match="decompresses to more than the limit"):
        decode_batch(bomb)


def test_long_strings_are_refused_by_the_unpacker():
    batch = wire([GameRecord.from_visits(5, 0.5, [], [])])
    batch["g"][0]["wid"] = "w" * 5000
    with pytest.raises(RecordError, match="max_str_len"):
        decode_batch(msgpack.packb(batch))


def amplification_bombs() -> dict[str, bytes]:
    """Blobs small on the wire that describe millions of tiny objects, or nest deep (issue 13)."""
    empties = b"\xdc\x27\x10" + b"\x80" * 10_000  # a list of 10,000 empty maps
    lists = b"\xdd" + (6000).to_bytes(4, "big") + empties * 6000  # 6,000 of them: 60 MB of 60 million objects
    game = msgpack.unpackb(encode_batch([GameRecord.from_visits(5, 0.5, [], [])], compress=False), raw=False)["g"][0]
    game.pop("w")
    in_field = b"\x82\xa1v\x01\xa1g\x91" + msgpack.packb(game)[:1] + msgpack.packb(game)[1:] + b"\xa1w" + lists
    in_field = in_field.replace(b"\x82\xa1v\x01\xa1g\x91\xde\x00\x11", b"\x82\xa1v\x01\xa1g\x91\xde\x00\x12", 1)
    deep = b"\x82\xa1v\x01\xa1g\x91\x81\xa1w" + b"\x91" * 1000 + b"\x00"
    return {
        "games as lists": lz4.frame.compress(b"\x82\xa1v\x01\xa1g" + lists, store_size=False),
        "games as lists, size declared": lz4.frame.compress(b"\x82\xa1v\x01\xa1g" + lists),
        "a field of lists": lz4.frame.compress(in_field, store_size=False),
        "nested 1000 deep": deep,
        "10,000 empty games": lz4.frame.compress(b"\x82\xa1v\x01\xa1g" + empties),
    }


@pytest.mark.parametrize("name", list(amplification_bombs()))
def test_amplification_bombs_cost_a_small_multiple_of_their_size(name):
    import time
    import tracemalloc

    blob = amplification_bombs()[name]
    assert len(blob) < 300_000
    tracemalloc.start()
    start = time.process_time()
    with pytest.raises(RecordError) as e:
        decode_batch(blob)
    seconds = time.process_time() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "RecursionError" not in str(e.value)
    assert peak < 64 * len(blob) + (4 << 20), (peak, str(e.value))  # the ratio cap, and a few MiB
    assert seconds < 1.0, (seconds, str(e.value))
    print(f"{name}: {len(blob)} bytes refused in {seconds * 1000:.0f} ms, peak {peak >> 10} KiB: {e.value}")
