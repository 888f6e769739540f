"""Process faults: the broker, the learner and the self-play workers SIGKILLed at random moments.

A broker, a learner and two self-play workers run as real processes (tiny 5x5 config, batches
of two games so batches flow quickly). Each round kills the broker, the learner and one of the
workers, in a random order, each at a random moment: once it has shown progress since its last
start (an ack since the broker or that worker came up, a learner checkpoint past the last one)
and a random delay after that. Every victim is restarted at once with the same config, data
dir and worker id. ``AZGO_FAULT_ROUNDS`` rounds (5 in ``make test``, 30 in ``make test-faults``);
the schedule comes from a seeded RNG: ``AZGO_FAULT_SEED`` replays a printed seed.

The evidence: each worker's outbox journal (``journal.log``: a ``put`` line once a batch is
on disk, an ``ack`` line with the broker's seq BEFORE its file goes), the broker's segments
read by ``azgo_broker.store.audit``, the learner's checkpoints and log, /status. Reconciled
after every kill of the broker (its store read while it is down) and after every round:

- every batch a worker saw acknowledged is in the store exactly once, at the seq of its ack;
  no batch id is stored twice; seqs only go up
- no record is damaged but a torn tail of the last segment, and every torn tail found while
  the broker is down is cut by its restart (its log line); nobody ever read a bad record
- the learner resumes from its newest checkpoint (step > 0, its log says so); checkpoint
  steps and generations, and the broker's current generation, never go backwards
- at the end the workers reconnect and deliver every batch their outbox held, then stop
  cleanly: every batch they produced is acked and stored (but for the last ones a stop could
  not deliver within its grace period: those stay in the outbox), and the store holds nothing else
"""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path

from procs import Service, get_json, http_url, tiny_config, wait_for

from azgo_broker.store import Audit, GameStore, audit, segment_name
from azgo_core.protocol import BatchHeader
from azgo_learner.checkpoint import NAME as CHECKPOINT_NAME
from azgo_learner.checkpoint import checkpoint_files, newest_checkpoint
from azgo_selfplay import outbox as outbox_module
from azgo_selfplay.outbox import SUFFIX, Batch, Outbox, read_journal

ROUNDS = int(os.environ.get("AZGO_FAULT_ROUNDS") or 5)
SEED = int(os.environ.get("AZGO_FAULT_SEED") or random.SystemRandom().randrange(1 << 32))
WORKERS = ("fault-w1", "fault-w2")
DELAY = (0.2, 2.0)
"""Seconds from "the victim has shown progress" to its SIGKILL, drawn per kill: the random moment."""
WORKER_NICE = 5
"""Workers run this much nicer than the test (see ``Cluster.start``)."""
T = 90.0
"""Deadline of one wait (a restart, progress, a delivery): generous for a loaded 2-core machine."""
NEVER = {
    "broker": ("is unreadable", "corrupt record", "repeats batch", "Traceback"),
    "learner": ("stored batch seq", "could not read games", "refused generation", "Traceback"),
    "selfplay": ("is unusable", "refused batch", "Traceback"),
}
"""Log lines that mean a bad record was read, a batch or generation refused, or a crash."""
RESUMED = re.compile(r"resumed from (ckpt-\d+\.safetensors): step (\d+), generation (-?\d+)")


class Generations(threading.Thread):
    """Samples the broker's current generation from /status every 0.1 s, while it answers."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.seen: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            try:
                model = get_json(self.url, timeout=5.0)["model"]
            except (OSError, ValueError, KeyError):
                continue  # down or restarting
            if model is not None:
                self.seen.append(model["generation"])

    def check(self) -> None:
        back = [(a, b) for a, b in zip(self.seen, self.seen[1:]) if b < a]
        assert not back, f"the broker's generation went backwards: {back[:5]}"


class Cluster:
    """The processes of the test, their restarts, and the evidence they leave."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.config = tiny_config(tmp, distributed={"batch_size": 2, "batch_max_wait": 0.3},
                                  learner={"checkpoint_interval": 0.5, "steps_per_generation": 8,
                                           "max_samples_per_position": 1.0})
        self.logs = tmp / "logs"
        self.status_url = http_url(self.config, "/status")
        self.procs: dict[str, Service] = {}
        self.up_since: dict[str, float] = {}  # wall time each service (re)started, for the journals' times
        self.kills: Counter[str] = Counter()
        self.cuts = 0  # torn tails found in the store while the broker was down
        self.stored_through = -1  # the highest seq in the store when the broker was last killed
        self.resume: tuple[int, str, int, int] | None = None  # expected 'resumed from' (index, file, step, generation)
        self.checkpoints: list[tuple[int, int]] = []  # (step, generation) of the newest checkpoint at each learner kill
        self.audits = 0
        self.generations = Generations(self.status_url)

    # --- processes ------------------------------------------------------------------------
    def start(self, name: str) -> None:
        if name in WORKERS:
            service = Service("selfplay", self.config, log_dir=self.logs, env={"AZGO_WORKER_ID": name}, tag=name)
            # a worker plays flat out, a core each: below the others it leaves the CPU to the restarts
            # the test waits on, and still makes far more batches than the test needs
            os.setpriority(os.PRIO_PROCESS, service.pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICE))
        else:
            service = Service(name, self.config, log_dir=self.logs)
        self.procs[name] = service
        self.up_since[name] = time.time()

    def kill(self, name: str) -> None:
        """SIGKILL ``name``, check what it left, restart it (without waiting: the next victim's wait overlaps)."""
        self.procs[name].kill()
        self.kills["worker" if name in WORKERS else name] += 1
        if name == "broker":
            self.broker_down()
        elif name == "learner":
            self.learner_down()
        else:
            self.start(name)

    def broker_down(self) -> None:
        """The store as the dead broker left it (its torn tails are counted, to be cut by the restart)."""
        found, _ = self.reconcile(live=False)
        self.cuts += sum(d.tail for d in found.damage)
        self.stored_through = max((r["seq"] for r in found.records), default=-1)
        self.start("broker")

    def check_cuts(self) -> None:
        """Once the restarted broker stores again: its log shows one cut per torn tail found."""
        logged = self.log("broker").count("truncating the torn tail")
        assert logged == self.cuts, f"{self.cuts} torn tail(s) found, the broker's log shows {logged} cut(s)"

    def learner_down(self) -> None:
        """The newest checkpoint never goes back; the restarted learner must resume from it (``check_resumed``)."""
        ckpt = newest_checkpoint(self.tmp / "learner" / "checkpoints")
        assert ckpt is not None, "the killed learner left no readable checkpoint"
        step, generation = ckpt.step, int(ckpt.state["generation"])
        if self.checkpoints:
            last = self.checkpoints[-1]
            assert step > last[0] and generation >= last[1], f"checkpoint went back: {last} -> {(step, generation)}"
        self.checkpoints.append((step, generation))
        self.resume = (len(RESUMED.findall(self.log("learner"))), ckpt.path.name, step, generation)
        self.start("learner")

    def check_resumed(self) -> None:
        """Once the restarted learner trains again: its log says it resumed from the newest checkpoint (step > 0)."""
        if self.resume is None:
            return
        index, name, step, generation = self.resume
        lines = RESUMED.findall(self.log("learner"))
        assert len(lines) == index + 1, f"{len(lines) - index} 'resumed from' lines after the restart: {lines[index:]}"
        assert lines[index] == (name, str(step), str(generation)) and step > 0, (lines[index], name, step, generation)
        self.resume = None

    # --- when to kill ---------------------------------------------------------------------
    def progressed(self, name: str) -> bool:
        """Has ``name`` worked since it (re)started? (Then the checks deferred from its restart are made.)

        Learner: a checkpoint past the one it resumed from. Broker: an ack of a batch it stored
        (a seq past the store as its predecessor left it). Worker: an ack since it started.
        """
        if name == "learner":
            files = checkpoint_files(self.tmp / "learner" / "checkpoints")
            step = int(CHECKPOINT_NAME.match(files[0].name).group(1)) if files else 0
            if step > (self.checkpoints[-1][0] if self.checkpoints else 0):
                self.check_resumed()
                return True
            return False
        if name == "broker":
            if any(line.event == "ack" and int(line.fields["seq"]) > self.stored_through
                   for w in WORKERS for line in self.journal(w)):
                self.check_cuts()
                return True
            return False
        return any(line.event == "ack" and line.time > self.up_since[name] for line in self.journal(name))

    # --- evidence -------------------------------------------------------------------------
    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def outbox(self, worker: str) -> Path:
        return self.tmp / "selfplay" / worker / "outbox"

    def journal(self, worker: str) -> list:
        return read_journal(self.outbox(worker))

    def acks(self) -> tuple[dict[str, int], int]:
        """(batch id -> seq of every batch a worker saw acknowledged, how many acks were duplicates)."""
        acked, duplicates = {}, 0
        for w in WORKERS:
            for line in self.journal(w):
                if line.event == "ack":
                    seq = int(line.fields["seq"])
                    first = acked.setdefault(line.batch_id, seq)
                    assert first == seq, f"{line.batch_id} acked as seq {first}, then as {seq}"
                    duplicates += line.fields["duplicate"] == "1"
        return acked, duplicates

    def reconcile(self, live: bool) -> tuple[Audit, dict[str, int]]:
        """Every acked batch stored exactly once at its seq; nothing stored twice; only a tail torn.

        ``live``: the broker runs, so the acks are read first (whatever they name was fsynced
        before) and a tail being written may show torn. Else its store is read first: it is
        dead, so any ack still coming in was for a batch already on disk.
        """
        if live:
            acked, _ = self.acks()
        found = audit(self.tmp / "broker" / "games")
        if not live:
            acked, _ = self.acks()
        self.audits += 1
        ids = Counter(r["batch_id"] for r in found.records)
        assert not [b for b, n in ids.items() if n > 1], f"batches stored twice: {[b for b, n in ids.items() if n > 1]}"
        seqs = [r["seq"] for r in found.records]
        assert all(a < b for a, b in zip(seqs, seqs[1:])), "seqs out of order in the store"
        inner = [d for d in found.damage if not d.tail]
        assert not inner, f"damaged records inside the store: {inner}"
        stored = {r["batch_id"]: r["seq"] for r in found.records}
        lost = sorted(b for b in acked if b not in stored)
        assert not lost, f"{len(lost)} acked batch(es) not in the store: {lost[:5]}"
        moved = {b: (s, stored[b]) for b, s in acked.items() if stored[b] != s}
        assert not moved, f"acked at one seq, stored at another: {dict(list(moved.items())[:5])}"
        return found, acked

    def check_logs(self) -> None:
        for name in ("broker", "learner", *WORKERS):
            text = self.log(name)
            bad = [p for p in NEVER["selfplay" if name in WORKERS else name] if p in text]
            assert not bad, f"{name}.log shows {bad}"

    def close(self) -> None:
        self.generations.done.set()
        for service in self.procs.values():
            if service.alive():
                service.kill()

    def dump_logs(self) -> None:
        for path in sorted(self.logs.glob("*.log")):
            print(f"----- {path.name}\n{path.read_text(errors='replace')[-5000:]}")


def test_sigkill_broker_learner_and_workers_lose_nothing_acknowledged(tmp_path):
    rng = random.Random(SEED)
    print(f"\nprocess faults: {ROUNDS} rounds, seed {SEED} (AZGO_FAULT_SEED={SEED} replays the schedule)")
    t0 = time.monotonic()
    cluster = Cluster(tmp_path)
    try:
        for name in ("broker", "learner", *WORKERS):
            cluster.start(name)
        cluster.generations.start()
        for r in range(1, ROUNDS + 1):
            victims = ["broker", "learner", rng.choice(WORKERS)]
            rng.shuffle(victims)
            moments = []
            for victim in victims:
                waited = time.monotonic()
                wait_for(lambda v=victim: cluster.progressed(v), T, f"round {r}: progress of {victim} since its start", 0.1)
                delay = rng.uniform(*DELAY)
                time.sleep(delay)  # the random moment, not a synchronisation
                cluster.kill(victim)
                moments.append(f"{victim} ({time.monotonic() - waited - delay:.1f} s to progress + {delay:.1f} s)")
            found, acked = cluster.reconcile(live=True)
            print(f"round {r}/{ROUNDS} at {time.monotonic() - t0:.0f} s: killed {', '.join(moments)}; "
                  f"{len(acked)} batches acked, {len(found.records)} stored")

        # the kills stop: every worker reconnects and delivers what its outbox held
        for w in WORKERS:
            left = {p.name[: -len(SUFFIX)] for p in cluster.outbox(w).glob("*" + SUFFIX)}
            wait_for(lambda w=w, left=left: left <= {x.batch_id for x in cluster.journal(w) if x.event == "ack"},
                     T, f"{w} to deliver the {len(left)} batch(es) in its outbox")
        for name in ("broker", "learner", *WORKERS):
            wait_for(lambda n=name: cluster.progressed(n), T, f"progress of {name} after the last round")
        for w in WORKERS:  # SIGTERM both, then wait: they deliver their last batch side by side
            cluster.procs[w].proc.send_signal(signal.SIGTERM)
        leftover = set()  # made at the stop and not acked within its grace period: the next run sends them
        for w in WORKERS:
            assert cluster.procs[w].wait(60) == 0, f"{w} did not stop cleanly"
            cluster.procs[w].stop()
            leftover |= {p.name[: -len(SUFFIX)] for p in cluster.outbox(w).glob("*" + SUFFIX)}
            assert not (cluster.outbox(w) / "rejected").exists(), f"the broker refused batches of {w}"
        assert cluster.procs["learner"].stop(60) == 0
        assert cluster.procs["broker"].stop(60) == 0
        cluster.generations.done.set()

        # the final reckoning, every process stopped
        found, acked = cluster.reconcile(live=False)
        assert not found.damage, f"damage left in the store after a clean stop: {found.damage}"
        produced = {x.batch_id for w in WORKERS for x in cluster.journal(w) if x.event in ("put", "ack")} | leftover
        stored = {rec["batch_id"] for rec in found.records}
        # acked => stored (reconcile); gone from an outbox => acked; stored => produced, and acked unless still left
        acked_ids = set(acked)
        assert produced - leftover <= acked_ids, f"batches gone unacked: {sorted(produced - leftover - acked_ids)[:5]}"
        assert stored <= produced, f"stored batches no worker made: {sorted(stored - produced)[:5]}"
        assert stored - acked_ids <= leftover, f"stored, not acked, not in an outbox: {sorted(stored - acked_ids - leftover)[:5]}"
        assert {rec["worker_id"] for rec in found.records} <= set(WORKERS)
        cluster.check_logs()
        cluster.generations.check()
        gens = cluster.generations.seen
        assert gens and gens[-1] >= 1, f"no generation past the first was published: {sorted(set(gens))}"
        assert sum(cluster.kills.values()) == 3 * ROUNDS
        _, duplicates = cluster.acks()
        print(f"process faults: {ROUNDS} rounds in {time.monotonic() - t0:.0f} s, seed {SEED}; kills: "
              f"broker {cluster.kills['broker']}, learner {cluster.kills['learner']}, workers {cluster.kills['worker']}; "
              f"batches made {len(produced)}, acked {len(acked)}, stored {len(stored)}, duplicates acked again {duplicates}, "
              f"left in an outbox at the stop {len(leftover)}; "
              f"torn tails cut {cluster.cuts}; store audits {cluster.audits}; learner resumed at steps "
              f"{[s for s, _ in cluster.checkpoints]}; generations seen {min(gens)}..{max(gens)}")
    except BaseException:
        cluster.dump_logs()
        raise
    finally:
        cluster.close()


# --- the instruments: the outbox journal and the store audit -----------------------------------
def test_outbox_journal_explains_every_batch_that_left(tmp_path, monkeypatch):
    box = Outbox(tmp_path / "outbox")
    for n in range(3):
        box.put(Batch(BatchHeader(batch_id=f"w1-{n}", worker_id="w1", games=2, positions=9, generations=[0]), b"x"))
    box.ack("w1-0", 7, duplicate=False)
    box.ack("w1-0", 7, duplicate=True)  # a second reply for the same batch: journaled, harmless
    box.reject("w1-1", "bad_batch: illegal move")
    lines = [(x.event, x.batch_id, x.fields) for x in read_journal(tmp_path / "outbox")]
    assert lines == [("put", f"w1-{n}", {"games": "2", "positions": "9"}) for n in range(3)] + [
        ("ack", "w1-0", {"seq": "7", "duplicate": "0"}), ("ack", "w1-0", {"seq": "7", "duplicate": "1"}),
        ("reject", "w1-1", {"code": "bad_batch"})]
    again = Outbox(tmp_path / "outbox")  # the journal is not a batch file: never quarantined
    assert again.pending() == ["w1-2"] and not (tmp_path / "outbox" / "corrupt").exists()

    monkeypatch.setattr(outbox_module, "JOURNAL_MAX_BYTES", 200)  # bounded: rotates to journal.log.1
    for n in range(10):
        again.ack("w1-2", n)
    assert (tmp_path / "outbox" / "journal.log.1").exists()
    assert (tmp_path / "outbox" / "journal.log").stat().st_size + (tmp_path / "outbox" / "journal.log.1").stat().st_size < 600
    assert [x.fields["seq"] for x in read_journal(tmp_path / "outbox")][-1] == "9"


def test_store_audit_reports_records_inner_damage_and_a_torn_tail(tmp_path):
    store = GameStore(tmp_path, segment_bytes=1 << 16)
    for n in range(4):
        store.append(BatchHeader(batch_id=f"b{n}", worker_id="w1", games=1, positions=5, generations=[0]), bytes([n]) * 100)
    store.commit()
    second = store.entries[1]
    store.close()
    path = tmp_path / segment_name(0)
    data = bytearray(path.read_bytes())
    data[second.offset + 20] ^= 0xFF  # damage inside: records follow it
    path.write_bytes(bytes(data) + data[: second.length // 2])  # and half a record at the end: a torn write
    found = audit(tmp_path)
    assert [r["batch_id"] for r in found.records] == ["b0", "b2", "b3"]
    assert found.records[0]["blob_bytes"] == 100 and "blob" not in found.records[0]
    assert [(d.offset, d.tail) for d in found.damage] == [(second.offset, False), (len(data), True)]
    assert path.read_bytes() == bytes(data) + data[: second.length // 2]  # read-only
