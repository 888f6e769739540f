"""The self-play outbox: batches stay on disk until acked, survive a restart, and a bad file is
moved aside (with a log line) instead of stopping the worker or being sent."""

from __future__ import annotations

import logging
import os

import msgpack
import pytest
from pydantic import ValidationError

from azgo_core.protocol import BatchHeader
from azgo_selfplay.outbox import Batch, Outbox, OutboxError


def batch(n: int, games: int = 3, created: float = 0.0) -> Batch:
    header = BatchHeader(batch_id=f"w1-{n:032x}", worker_id="w1", games=games, positions=10 * games, generations=[0, 2])
    return Batch(header, blob=b"\x04\x22\x4d\x18" + bytes([n]) * 40, created=created or 1000.0 + n)


def test_put_pending_get_ack(tmp_path):
    box = Outbox(tmp_path / "outbox")
    for n in (3, 1, 2):
        box.put(batch(n))
    ids = [batch(n).header.batch_id for n in (3, 1, 2)]
    assert box.pending() == ids  # the order they were put
    assert len(box) == 3 and box.games == 9
    assert box.get(batch(1).header.batch_id) == batch(1)
    assert box.ack(batch(1).header.batch_id) is True
    assert not box.path(batch(1).header.batch_id).exists()
    assert box.ack(batch(1).header.batch_id) is False  # a second ack (a duplicate reply) is harmless
    assert box.get(batch(1).header.batch_id) is None
    assert batch(1).header.batch_id not in box and batch(2).header.batch_id in box


def test_survives_reopen_oldest_first(tmp_path):
    box = Outbox(tmp_path / "outbox")
    for n in (5, 4, 6):
        box.put(batch(n))  # created times 1005, 1004, 1006
    box.ack(batch(6).header.batch_id)
    again = Outbox(tmp_path / "outbox")
    assert again.pending() == [batch(4).header.batch_id, batch(5).header.batch_id]
    assert again.get(batch(5).header.batch_id) == batch(5)


def test_put_stamps_creation_time_and_refuses_bad_ids(tmp_path):
    box = Outbox(tmp_path / "outbox")
    b = Batch(BatchHeader(batch_id="w1-abc", worker_id="w1", games=1, positions=3, generations=[0]), blob=b"x")
    box.put(b)
    assert box.get("w1-abc").created > 0
    with pytest.raises(ValidationError, match="batch_id"):  # the id names a file: refused where the header is made
        BatchHeader(batch_id="../evil", worker_id="w1", games=1, positions=3, generations=[0])


def test_corrupt_files_are_quarantined_with_a_log_line(tmp_path, caplog):
    d = tmp_path / "outbox"
    box = Outbox(d)
    box.put(batch(1))
    (d / "w1-truncated.batch").write_bytes(batch(2).to_bytes()[:25])
    (d / "w1-pickle.batch").write_bytes(b"\x80\x04\x95junk")
    (d / "w1-renamed.batch").write_bytes(batch(3).to_bytes())  # holds another batch id
    wrong = msgpack.packb({"v": 1, "batch_id": "w1-x", "games": "many"})
    (d / "w1-x.batch").write_bytes(wrong)
    liar = msgpack.unpackb(batch(4).to_bytes()) | {"batch_id": "w1-z", "worker_id": "../w1"}
    (d / "w1-z.batch").write_bytes(msgpack.packb(liar))  # every key, but a header BatchHeader refuses
    with pytest.raises(OutboxError, match="not a valid batch header: worker_id"):
        Batch.from_bytes(msgpack.packb(liar))
    (d / ".w1-y.batch.abc.tmp").write_bytes(b"half a write")  # a crash during atomic_write
    with caplog.at_level(logging.ERROR, logger="azgo.selfplay.outbox"):
        again = Outbox(d)
    assert again.pending() == [batch(1).header.batch_id]
    assert sorted(p.name for p in (d / "corrupt").iterdir()) == ["w1-pickle.batch", "w1-renamed.batch",
                                                                 "w1-truncated.batch", "w1-x.batch", "w1-z.batch"]
    assert not (d / ".w1-y.batch.abc.tmp").exists()
    messages = "\n".join(r.getMessage() for r in caplog.records)
    for name in ("w1-truncated.batch", "w1-pickle.batch", "w1-renamed.batch", "w1-x.batch", "w1-z.batch"):
        assert name in messages
    assert "does not match its file name" in messages and "not a batch file" in messages
    assert "not a valid batch header: worker_id" in messages


def test_file_damaged_while_open_is_moved_aside_on_get(tmp_path, caplog):
    box = Outbox(tmp_path / "outbox")
    box.put(batch(1))
    box.path(batch(1).header.batch_id).write_bytes(b"\x00garbage")
    with caplog.at_level(logging.ERROR, logger="azgo.selfplay.outbox"):
        assert box.get(batch(1).header.batch_id) is None
    assert len(box) == 0
    assert (box.corrupt_dir / (batch(1).header.batch_id + ".batch")).exists()
    assert "unusable" in caplog.text


def test_reject_moves_the_file_beside_the_reason(tmp_path):
    box = Outbox(tmp_path / "outbox")
    box.put(batch(1))
    box.put(batch(2))
    target = box.reject(batch(1).header.batch_id, "bad_batch: game 0: illegal move")
    assert target == box.rejected_dir / (batch(1).header.batch_id + ".batch")
    assert Batch.from_bytes(target.read_bytes()) == batch(1)  # kept intact for a person to look at
    assert "illegal move" in (box.rejected_dir / (batch(1).header.batch_id + ".txt")).read_text()
    assert box.pending() == [batch(2).header.batch_id]
    assert Outbox(tmp_path / "outbox").pending() == [batch(2).header.batch_id]  # never picked up again
    assert box.reject("w1-unknown", "x") is None


def test_batch_file_is_msgpack_not_pickle(tmp_path):
    box = Outbox(tmp_path / "outbox")
    box.put(batch(7))
    data = msgpack.unpackb(box.path(batch(7).header.batch_id).read_bytes(), raw=False)
    assert data["batch_id"] == batch(7).header.batch_id and data["games"] == 3 and data["generations"] == [0, 2]
    assert data["blob"] == batch(7).blob
    assert not [p for p in os.listdir(box.dir) if p.endswith(".tmp")]
