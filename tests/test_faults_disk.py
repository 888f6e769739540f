"""Disk faults: a full data disk, and a damaged game store found at start.

A full disk is a real one: the broker's and the learner's data dirs on a small tmpfs, filled to
the last byte by a filler file. The broker must refuse each batch with an ``Error(storage)``
saying the disk is full, stay up and leave nothing half-written (its totals and segment files
unchanged, a restart on the full disk finds no damage); a new generation is refused the same
way; the worker keeps each refused batch in its outbox and retries with back-off; the learner
logs each checkpoint it cannot write and keeps running. Once the filler is gone every batch lands
exactly once and the learner checkpoints again.

A damaged store is made the way it happens: the broker stopped, then bytes flipped inside a
record (a bad sector) and half a record left at the end of the last segment (a crash
mid-write). The broker process must start, log the damaged record (skipped, the records after
it kept) and the torn tail (truncated) with the segment and byte offset of each, and serve
every intact batch. ``tests/test_broker_store.py`` checks the same rules on the store object.
"""

from __future__ import annotations

import errno
import re
import subprocess
import time
from pathlib import Path

import pytest
from broker_helpers import batch, play_games, publish
from fault_helpers import Cluster, T, unavailable
from procs import tiny_config, wait_for

from azgo_broker.store import HEADER, GameStore, audit, encode_record, segment_name
from azgo_core import protocol as P
from azgo_runtime.client import BrokerClient, RemoteError

TMPFS_BYTES = 8 << 20
REFUSED = re.compile(r"broker could not take batch (\S+) \(storage: (.*)\); kept, resending in ([\d.]+) s")


@pytest.fixture
def small_disk(tmp_path):
    """tmp_path/disk: a tmpfs of TMPFS_BYTES of its own (unmounted at the end, whatever happened)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES},mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:  # not root
        unavailable(f"cannot mount a tmpfs here ({done.stderr.strip()})")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)  # still busy: detach it now, freed when let go


def fill(path: Path) -> int:
    """Write ``path`` until its file system has not one byte left (ENOSPC); returns the bytes written."""
    written, chunk = 0, 1 << 16
    with open(path, "wb", buffering=0) as f:
        while chunk:
            try:
                written += f.write(b"\0" * chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                chunk //= 2
    return written


def figures(totals: dict) -> tuple:
    """What the store holds, from /status totals."""
    return totals["batches"], totals["games"], totals["positions"], totals["store_bytes"]


def settled(c: Cluster) -> dict | None:
    """/status totals once they agree with the records in the segments and the segment files' sizes."""
    totals = c.status()["totals"]
    files = sum(p.stat().st_size for p in c.games_dir.glob("*.seg"))
    if sum(c.stored().values()) == totals["batches"] and files == totals["store_bytes"]:
        return totals
    return None


def test_full_disk_refuses_batches_keeps_them_in_the_outbox_and_resumes_when_space_frees(tmp_path, small_disk):
    # the broker's and the learner's data on the small disk; uncompressed batches of 8 games
    # (> 4 KiB): a record smaller than the free end of the segment's last page could still be
    # written to a full tmpfs. The learner publishes generation 0 and then only checkpoints (it
    # never has enough positions to train: its CPU stays with the others)
    config = tiny_config(tmp_path, distributed={"batch_size": 8, "compression": False},
                         broker={"data_dir": str(small_disk / "broker")},
                         learner={"data_dir": str(small_disk / "learner"), "min_positions": 10**9})
    c = Cluster(tmp_path, config)
    checkpoints = small_disk / "learner" / "checkpoints"
    try:
        w = c.worker("w1")  # first: a worker and the learner take longest to start (torch)
        learner = c.learner()
        c.start_broker()
        c.row_where("w1", "Active", lambda r: r["state"] == "Active")  # with the learner's generation 0
        wait_for(lambda: c.stored(), T, "a first batch stored")
        wait_for(lambda: list(checkpoints.glob("ckpt-*.safetensors")), T, "a first learner checkpoint")

        filled = fill(small_disk / "filler")
        assert filled > 0
        # the worker's next batch is refused, and retried ever more slowly (an ack in between starts over)
        refusals = wait_for(lambda: len(r := REFUSED.findall(w.log())) >= 3 and r, T, "three refusals")
        batch_id, message, _ = refusals[0]
        assert "disk full" in message and "No space left on device" in message, message
        delays = [float(d) for *_, d in refusals]
        assert any(a < b for a, b in zip(delays, delays[1:])), f"the retry delays should grow: {delays}"
        assert f"batch {batch_id} not stored" in c.broker.log()
        assert batch_id in c.outbox("w1"), "a refused batch stays in the outbox"
        # nothing half-written: every failed append was rolled back; /status, the records and the files agree
        totals = wait_for(lambda: settled(c), T, "the store's figures and files agree")
        assert batch_id not in c.stored() and c.broker.alive() and w.alive()
        wait_for(lambda: len(REFUSED.findall(w.log())) > len(refusals), T, "one more refusal")
        assert figures(wait_for(lambda: settled(c), T, "figures")) == figures(totals), "the store changed on a full disk"
        # a new generation cannot be stored either: refused as storage, not an internal error
        with BrokerClient(c.settings.router_endpoint(), timeout=T) as client, pytest.raises(RemoteError) as refused:
            client.request(*publish(c.settings, 999_999))
        assert refused.value.code == P.ErrorCode.STORAGE and "disk full" in refused.value.message, refused.value
        # the learner cannot checkpoint either: it says so, keeps running and tries again at the next interval
        wait_for(lambda: learner.log().count("checkpoint not written") >= 2, T, "two failed checkpoints")
        assert "No space left on device" in learner.log() and learner.alive()

        # a restart on the full disk: the index rebuild finds every record intact, nothing to repair
        assert c.broker.stop() == 0
        first_log = c.broker.log()
        c.start_broker(tag="broker-restarted")
        restarted = c.broker.log()
        assert f": {totals['batches']} batches, {totals['games']} games" in restarted and "truncating" not in restarted
        assert "corrupt" not in restarted and "Traceback" not in first_log + restarted
        assert not audit(c.games_dir).damage

        freed = time.time()
        (small_disk / "filler").unlink()  # space again: the worker's next retry goes through
        waiting = c.outbox("w1")
        wait_for(lambda: waiting <= set(c.stored()), T, "the refused batches stored")
        wait_for(lambda: any(p.stat().st_mtime > freed for p in checkpoints.glob("ckpt-*.safetensors")), T,
                 "a learner checkpoint written once there is space")
        c.check_exactly_once("w1", w)
        assert learner.stop() == 0 and "Traceback" not in learner.log()
    finally:
        c.close()
        c.dump_logs()  # pytest shows a test's output only when it failed


def test_damaged_store_is_repaired_at_start_with_the_segment_and_offset_logged(tmp_path):
    config = tiny_config(tmp_path)
    c = Cluster(tmp_path, config)
    settings = c.settings
    # a store of five acknowledged batches, written as the broker writes them
    records = {f"ok-{i}": play_games(settings, 1, "w9") for i in range(5)}
    store = GameStore(c.games_dir)
    for batch_id, games in records.items():
        msg, blobs = batch(batch_id, "w9", games)
        store.append(msg.header, blobs[0])
        store.commit()
    victim, last = store.entries[2], store.entries[-1]
    store.close()
    path = c.games_dir / segment_name(0)
    with open(path, "r+b") as f:  # a bad sector inside the third record
        f.seek(victim.offset + HEADER.size + 10)
        f.write(b"\xff" * 16)
    torn = encode_record({"seq": 5, "batch_id": "torn", "worker_id": "w9", "games": 1, "positions": 9,
                          "generations": [0], "received": 0.0, "blob": b"x" * 300})
    with open(path, "ab") as f:  # a crash half-way through appending a sixth record
        f.write(torn[: len(torn) // 2])
    end = last.offset + last.length

    try:
        b = c.start_broker()
        log = b.log()
        assert re.search(rf"corrupt record in \S*{segment_name(0)} at offset {victim.offset} .*skipping {victim.length} bytes",
                         log), log
        assert re.search(rf"at offset {end} of \S*{segment_name(0)}; truncating the torn tail, dropping {len(torn) // 2} bytes",
                         log), log
        assert path.stat().st_size == end
        kept = [k for k in records if k != victim.header.batch_id]
        assert c.status()["totals"]["batches"] == len(kept)
        with BrokerClient(settings.router_endpoint(), timeout=T) as client:
            client.request(*publish(settings, 0))
            client.request(P.Hello(worker_id="w9", board_size=settings.board.size))  # a new broker knows no one
            reply = client.request(P.GetSamples(after=-1, window=10**9, max_bytes=64 << 20))
            assert [s.seq for s in reply.message.batches] == [0, 1, 3, 4] and len(reply.blobs) == 4
            for batch_id in kept:  # what survived is known: a resend is a duplicate
                ack = client.request(*batch(batch_id, "w9", records[batch_id])).message
                assert ack.duplicate, batch_id
            # the damaged batch is gone from the index: a resend stores it again, after the kept ones
            ack = client.request(*batch(victim.header.batch_id, "w9", records[victim.header.batch_id])).message
            assert not ack.duplicate and ack.seq == 5
        assert "Traceback" not in b.log()
    finally:
        c.close()
        c.dump_logs()

