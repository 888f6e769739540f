"""The broker's game store: group commit, recovery from torn tails, window queries."""

from __future__ import annotations

import logging
import os

import pytest

from azgo_broker.store import HEADER, READERS, GameStore, StoreError, segment_name
from azgo_core.protocol import BatchHeader


def header(batch_id: str, worker_id: str, games: int, positions: int) -> BatchHeader:
    return BatchHeader(batch_id=batch_id, worker_id=worker_id, games=games, positions=positions, generations=[0])


def fill(store: GameStore, sizes: list[int], prefix: str = "b") -> list[int]:
    """Append one batch per entry of ``sizes`` (its positions), committed together; returns the seqs."""
    seqs = [store.append(header(f"{prefix}{i}", "w", 1, n), f"blob-{prefix}{i}".encode() * 10) for i, n in enumerate(sizes)]
    store.commit()
    return seqs


def test_append_is_invisible_until_commit_then_survives_reopen(tmp_path):
    store = GameStore(tmp_path)
    seq = store.append(header("a", "w1", 2, 30), b"payload-a")
    assert seq == 0 and store.seq_of("a") is None and store.pending_seq_of("a") == 0
    assert store.window(-1, 100, 1 << 20).entries == []
    store.commit()
    assert store.seq_of("a") == 0 and store.total_games == 2 and store.total_positions == 30
    fill(store, [5, 7], prefix="x")
    store.close()

    again = GameStore(tmp_path)
    assert [e.seq for e in again.entries] == [0, 1, 2]
    assert again.seq_of("a") == 0 and again.seq_of("x1") == 2
    assert (again.total_games, again.total_positions, again.last_seq) == (4, 42, 2)
    assert again.read_blob(again.entries[0]) == b"payload-a"
    assert again.append(header("next", "w1", 1, 1), b"n") == 3  # seqs continue after a restart
    again.close()


def test_uncommitted_appends_are_gone_after_close(tmp_path):
    store = GameStore(tmp_path)
    fill(store, [3])
    store.append(header("lost", "w", 1, 3), b"never committed")
    store.close()  # no commit: never acked, may be dropped
    again = GameStore(tmp_path)
    assert again.seq_of("lost") is None and len(again.entries) == 1
    again.close()


@pytest.mark.parametrize("damage", ["cut", "garbage", "crc"])
def test_torn_tail_is_truncated_with_a_warning(tmp_path, caplog, damage):
    store = GameStore(tmp_path)
    fill(store, [3, 4, 5])
    last = store.entries[-1]
    store.close()
    path = tmp_path / segment_name(0)
    if damage == "cut":  # a crash in the middle of the last record
        os.truncate(path, last.offset + last.length // 2)
        dropped, good = last.length // 2, 2
    elif damage == "garbage":
        with open(path, "ab") as f:
            f.write(b"\x00junk" * 7)
        dropped, good = 35, 3
    else:  # a flipped byte in the last payload
        with open(path, "r+b") as f:
            f.seek(last.offset + HEADER.size + 3)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0xFF]))
        dropped, good = last.length, 2

    with caplog.at_level(logging.WARNING, logger="azgo.broker.store"):
        again = GameStore(tmp_path)
    assert len(again.entries) == good
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and str(path) in warning[0] and f"dropping {dropped} bytes" in warning[0]
    assert path.stat().st_size == (last.offset + last.length if damage == "garbage" else last.offset)
    # the store keeps working after the repair, and the repaired file reopens cleanly
    fill(again, [9], prefix="after")
    assert again.seq_of("after0") == good
    again.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="azgo.broker.store"):
        third = GameStore(tmp_path)
    assert len(third.entries) == good + 1 and not caplog.records
    third.close()


def test_corrupt_record_inside_an_older_segment_is_skipped(tmp_path, caplog):
    store = GameStore(tmp_path, segment_bytes=1 << 16)
    big = b"x" * 30_000
    for i in range(4):  # two records per segment, then a roll-over
        store.append(header(f"b{i}", "w", 1, 10), big)
        store.commit()
    assert store._tail >= 1
    victim = store.entries[0]
    store.close()
    with open(tmp_path / segment_name(victim.segment), "r+b") as f:
        f.seek(victim.offset + HEADER.size + 100)
        f.write(b"CORRUPTED")
    with caplog.at_level(logging.ERROR, logger="azgo.broker.store"):
        again = GameStore(tmp_path, segment_bytes=1 << 16)
    assert [e.header.batch_id for e in again.entries] == ["b1", "b2", "b3"]
    assert any("corrupt record" in r.getMessage() and segment_name(0) in r.getMessage() for r in caplog.records)
    again.close()


def test_corrupt_record_inside_the_last_segment_keeps_the_later_batches(tmp_path, caplog):
    store = GameStore(tmp_path)
    for i in range(4):  # four acknowledged rounds, all in segment 0
        fill(store, [5], prefix=f"r{i}-")
    victim, last = store.entries[1], store.entries[-1]
    store.close()
    path = tmp_path / segment_name(0)
    size = path.stat().st_size
    with open(path, "r+b") as f:  # damage (a bad sector, a stray write), not a torn write
        f.seek(victim.offset + HEADER.size + 5)
        f.write(b"CORRUPTED")
    with caplog.at_level(logging.WARNING, logger="azgo.broker.store"):
        again = GameStore(tmp_path)
    assert [e.header.batch_id for e in again.entries] == ["r0-0", "r2-0", "r3-0"]
    assert path.stat().st_size == size  # nothing truncated
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and str(path) in errors[0] and f"offset {victim.offset}" in errors[0]
    assert f"skipping {victim.length} bytes" in errors[0]
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    assert again.read_blob(again.entries[-1]) == b"blob-r3-0" * 10  # the later batches are served
    assert [e.seq for e in again.window(-1, 1000, 1 << 20).entries] == [0, 2, 3]
    # appends continue after the kept records, and a torn tail behind them is still cut
    fill(again, [1], prefix="after")
    torn = again.entries[-1]
    again.close()
    os.truncate(path, torn.offset + torn.length - 3)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="azgo.broker.store"):
        third = GameStore(tmp_path)
    assert [e.header.batch_id for e in third.entries] == ["r0-0", "r2-0", "r3-0"] and path.stat().st_size == torn.offset
    assert any(r.levelno == logging.WARNING and "truncating the torn tail" in r.getMessage() for r in caplog.records)
    assert last.offset + last.length == torn.offset
    third.close()


def test_reads_see_what_a_rollback_rewrote(tmp_path):
    store = GameStore(tmp_path)
    fill(store, [1])
    store.append(header("gone", "w", 1, 1), b"G" * 64)  # uncommitted bytes right behind the committed record
    assert store.read_blob(store.entries[0]) == b"blob-b0" * 10
    store.rollback()
    store.append(header("kept", "w", 1, 1), b"K" * 64)  # same offset, same length, other bytes
    store.commit()
    assert store.entries[1].header.batch_id == "kept" and store.read_blob(store.entries[1]) == b"K" * 64
    store.close()


def test_read_descriptors_stay_bounded(tmp_path):
    store = GameStore(tmp_path, segment_bytes=1 << 12)
    for i in range(12):  # one ~5 kB batch per segment
        store.append(header(f"b{i}", "w", 1, 1), bytes([i]) * 5000)
        store.commit()
    assert len({e.segment for e in store.entries}) == 12
    assert [store.read_blob(e)[:1] for e in store.entries] == [bytes([i]) for i in range(12)]
    fds = list(store._readers.values())
    assert len(fds) == READERS
    store.close()
    assert not store._readers
    for fd in fds:  # closed with the store
        with pytest.raises(OSError):
            os.fstat(fd)


def test_segments_roll_over_and_read_back(tmp_path):
    store = GameStore(tmp_path, segment_bytes=1 << 16)
    blobs = [bytes([i]) * 20_000 for i in range(7)]
    for i, blob in enumerate(blobs):
        store.append(header(f"b{i}", "w", 1, 1), blob)
        store.commit()
    assert len({e.segment for e in store.entries}) >= 2
    assert store.store_bytes == sum(p.stat().st_size for p in tmp_path.glob("*.seg"))
    store.close()
    again = GameStore(tmp_path, segment_bytes=1 << 16)
    assert [again.read_blob(e) for e in again.entries] == blobs
    again.close()


def test_duplicate_batch_ids_are_known_across_reopen(tmp_path):
    store = GameStore(tmp_path)
    fill(store, [1, 2, 3])
    store.close()
    again = GameStore(tmp_path)
    assert [again.seq_of(f"b{i}") for i in range(3)] == [0, 1, 2]
    assert again.seq_of("b3") is None
    again.close()


def test_window_takes_batches_holding_the_last_positions(tmp_path):
    store = GameStore(tmp_path)
    fill(store, [10, 10, 10, 10, 10])  # seqs 0..4, 50 positions
    seqs = lambda w: [e.seq for e in w.entries]  # noqa: E731
    assert seqs(store.window(-1, 1000, 1 << 20)) == [0, 1, 2, 3, 4]  # window larger than the store
    assert seqs(store.window(-1, 20, 1 << 20)) == [3, 4]  # exactly two batches' worth
    assert seqs(store.window(-1, 21, 1 << 20)) == [2, 3, 4]  # a batch partly inside counts
    assert seqs(store.window(3, 1000, 1 << 20)) == [4]  # only what the learner lacks
    w = store.window(4, 1000, 1 << 20)
    assert w.entries == [] and not w.more


def test_window_stops_at_max_bytes_but_always_sends_one(tmp_path):
    store = GameStore(tmp_path)
    fill(store, [1, 1, 1, 1])
    size = store.entries[0].blob_bytes
    w = store.window(-1, 100, 2 * size)
    assert [e.seq for e in w.entries] == [0, 1] and w.more
    w = store.window(1, 100, 1)  # below one blob: still one
    assert [e.seq for e in w.entries] == [2] and w.more
    w = store.window(2, 100, 1)
    assert [e.seq for e in w.entries] == [3] and not w.more
    w = store.window(-1, 100, 1 << 20, max_count=3)
    assert len(w.entries) == 3 and w.more


def test_failed_sync_rolls_the_round_back(tmp_path, monkeypatch):
    store = GameStore(tmp_path)
    fill(store, [4])
    size = (tmp_path / segment_name(0)).stat().st_size
    store.append(header("doomed1", "w", 1, 2), b"d1")
    store.append(header("doomed2", "w", 1, 2), b"d2")

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("azgo_broker.store.os.fsync", no_space)
    with pytest.raises(StoreError, match="No space left"):
        store.commit()
    monkeypatch.undo()
    assert (tmp_path / segment_name(0)).stat().st_size == size  # the round's bytes are gone
    assert store.seq_of("doomed1") is None and store.total_positions == 4
    assert store.append(header("doomed1", "w", 1, 2), b"d1") == 1  # the retry takes the next seq
    store.commit()
    store.close()
    again = GameStore(tmp_path)
    assert [e.header.batch_id for e in again.entries] == ["b0", "doomed1"]
    again.close()


def test_recent_rates_count_the_last_seconds(tmp_path):
    store = GameStore(tmp_path)
    store.append(header("old", "w", 5, 50), b"o", received=1000.0)
    store.append(header("new", "w", 3, 30), b"n", received=1095.0)
    store.commit()
    assert store.recent_rates(10.0, now=1100.0) == (0.3, 3.0)
    store.close()


def test_a_failed_append_drops_only_that_batch(tmp_path, monkeypatch):
    store = GameStore(tmp_path)
    assert store.append(header("kept", "w", 1, 2), b"k") == 0
    real_write = os.write

    def full_disk(fd, data):
        real_write(fd, data[: len(data) // 2])  # a partial write, then the error
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("azgo_broker.store.os.write", full_disk)
    with pytest.raises(StoreError, match="No space left"):
        store.append(header("lost", "w", 1, 2), b"l" * 100)
    monkeypatch.undo()
    assert store.append(header("next", "w", 1, 2), b"n") == 1
    store.commit()
    store.close()
    again = GameStore(tmp_path)
    assert [(e.seq, e.header.batch_id) for e in again.entries] == [(0, "kept"), (1, "next")]
    again.close()


def test_seqs_are_not_reused_when_a_rollback_cannot_truncate(tmp_path, monkeypatch):
    store = GameStore(tmp_path)
    store.append(header("a", "w", 1, 2), b"a")

    def fail(*args):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("azgo_broker.store.os.fsync", fail)
    monkeypatch.setattr("azgo_broker.store.os.ftruncate", fail)
    with pytest.raises(StoreError):
        store.commit()
    monkeypatch.undo()
    assert store.append(header("b", "w", 1, 2), b"b") == 1  # "a" keeps seq 0 on disk
    store.commit()
    store.close()
    again = GameStore(tmp_path)  # the unacknowledged "a" is indexed too, in order: a resend is a duplicate
    assert [(e.seq, e.header.batch_id) for e in again.entries] == [(0, "a"), (1, "b")]
    again.close()
