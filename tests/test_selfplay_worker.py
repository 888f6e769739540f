"""The self-play worker as a real process against a real broker process on loopback.

Tiny config (5x5, a 1-block net, 8 visits, 4 games per batch, heartbeats every 0.2 s,
liveness 1 s): a worker finishes games within a second or two. Every wait is a poll with a
deadline (``wait_for``); process logs are printed when a test fails.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from procs import Service, get_json, http_url, router_endpoint, tiny_config, wait_for

from azgo_core import protocol as P
from azgo_core.config import load_settings
from azgo_core.model import AZNet, serialize_model
from azgo_core.position import Position
from azgo_core.records import decode_batch, encode_batch
from azgo_core.search import uniform_evaluator
from azgo_core.selfplay import SelfPlayRunner
from azgo_runtime.client import BrokerClient
from azgo_selfplay.outbox import Batch, Outbox

EXAMPLES = Path(__file__).resolve().parents[1] / "services" / "selfplay" / "examples"
T = 30.0  # deadline of one wait: generous for a loaded 2-core machine, never reached when things work


class System:
    """A broker, the processes of one test, and helpers to look at them."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.config = tiny_config(tmp_path)
        self.settings = load_settings(self.config)
        self.procs: list[Service | subprocess.Popen] = []
        self.logs: list[Path] = []
        self._client: BrokerClient | None = None
        self.broker = self.start_broker()

    # --- processes ------------------------------------------------------------------------
    def start_broker(self) -> Service:
        broker = self._track(Service("broker", self.config, log_dir=self.tmp))
        wait_for(lambda: self.status(), T, "the broker's /status")
        return broker

    def worker(self, worker_id: str, *args: str) -> Service:
        return self._track(Service("selfplay", self.config, "--worker-id", worker_id, *args, log_dir=self.tmp,
                                   tag=f"selfplay-{worker_id}"))

    def script(self, path: Path, worker_id: str, *args: str) -> subprocess.Popen:
        log_path = self.tmp / f"script-{worker_id}.log"
        self.logs.append(log_path)
        proc = subprocess.Popen([sys.executable, str(path), "--config", str(self.config), "--worker-id", worker_id, *args],
                                stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def _track(self, service: Service) -> Service:
        self.procs.append(service)
        self.logs.append(service.log_path)
        return service

    def close(self) -> None:
        for p in self.procs:
            if isinstance(p, Service):
                p.stop(5)
            elif p.poll() is None:
                p.kill()
                p.wait()
        if self._client is not None:
            self._client.close()

    def dump_logs(self) -> None:
        for path in self.logs:
            if path.exists():
                print(f"----- {path.name}\n{path.read_text(errors='replace')[-6000:]}")

    # --- the broker -----------------------------------------------------------------------
    @property
    def client(self) -> BrokerClient:
        if self._client is None:
            self._client = BrokerClient(router_endpoint(self.config), timeout=10)
        return self._client

    def publish(self, generation: int) -> None:
        blob = serialize_model(AZNet(self.settings.net_config()), generation=generation)
        self.client.request(P.PublishModel(generation=generation, sha256=hashlib.sha256(blob).hexdigest()), [blob])

    def status(self) -> dict:
        return get_json(http_url(self.config, "/status"))

    def row(self, worker_id: str) -> dict | None:
        return next((w for w in self.status()["workers"] if w["worker_id"] == worker_id), None)

    def row_where(self, worker_id: str, what: str, predicate) -> dict:
        """Wait until the worker's /status row satisfies ``predicate``; returns the row."""
        return wait_for(lambda: (r := self.row(worker_id)) is not None and predicate(r) and r, T, f"{worker_id}: {what}")

    def stored(self) -> tuple[list[P.StoredBatch], list[bytes], P.Samples]:
        """Every batch in the broker's game store, oldest first."""
        batches, blobs, after = [], [], -1
        while True:
            reply = self.client.request(P.GetSamples(after=after, window=10**9, max_bytes=64 << 20))
            batches += reply.message.batches
            blobs += reply.blobs
            if not reply.message.more or not reply.message.batches:
                return batches, blobs, reply.message
            after = reply.message.batches[-1].seq

    def games(self) -> list:
        return [g for blob in self.stored()[1] for g in decode_batch(blob)]


@pytest.fixture
def system(tmp_path):
    s = System(tmp_path)
    yield s
    s.close()
    s.dump_logs()  # pytest shows a teardown's output only when the test failed


def outbox_files(system: System, worker_id: str) -> list[Path]:
    return sorted((Path(system.settings.self_play.data_dir) / worker_id / "outbox").glob("*.batch"))


def summary(log: str) -> dict[str, int]:
    """The worker's last 'stopped: games=... batches=...' line as numbers."""
    line = [ln for ln in log.splitlines() if "stopped: games=" in ln][-1]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def test_worker_plays_ships_valid_games_and_adopts_a_new_generation(system):
    w = system.worker("w1", "--seed", "7")
    system.row_where("w1", "Syncing without a model", lambda r: r["state"] == "Syncing" and r["generation"] == -1)
    system.publish(0)
    system.row_where("w1", "Active with generation 0", lambda r: r["state"] == "Active" and r["generation"] == 0)
    wait_for(lambda: system.status()["totals"]["games"] >= 8, T, "8 games stored")

    system.publish(1)
    system.row_where("w1", "generation 1", lambda r: r["generation"] == 1 and r["state"] == "Active")
    wait_for(lambda: any(g.model_generation == 1 for g in system.games()), T, "games of generation 1 stored")
    assert w.stop() == 0

    games = system.games()
    for g in games:
        assert g.worker_id == "w1" and g.board_size == 5 and g.model_generation in (0, 1)
        pos = Position(5, g.komi)
        for move in g.moves:  # raises on an illegal move
            pos.play(int(move))
    assert "model 000001 adopted" in w.log()
    # a clean stop delivers everything: the broker holds exactly what the worker says it made
    done = summary(w.log())
    batches, _, samples = system.stored()
    assert done["outbox"] == 0 and not outbox_files(system, "w1")
    assert (len(batches), samples.total_games, len(games)) == (done["batches"], done["games"], done["games"])
    system.row_where("w1", "final totals", lambda r: r["games_total"] == done["games"])


def test_killed_worker_goes_offline_others_go_on_and_it_comes_back(system):
    system.publish(0)
    w1, w2 = system.worker("w1"), system.worker("w2")
    for wid in ("w1", "w2"):
        system.row_where(wid, "Active with games", lambda r: r["state"] == "Active" and r["games_total"] > 0)
    w1.kill()
    liveness = system.settings.distributed.liveness_seconds
    wait_for(lambda: system.row("w1")["state"] == "Offline", liveness + 5, "w1 Offline after SIGKILL")
    before = system.row("w2")["games_total"]
    system.row_where("w2", "more games", lambda r: r["state"] == "Active" and r["games_total"] > before)

    w1 = system.worker("w1")  # same id, same outbox folder (the lock died with the killed process)
    system.row_where("w1", "Active again", lambda r: r["state"] == "Active" and r["last_seen_s"] < liveness)
    wait_for(lambda: system.row("w1")["games_total"] > 0, T, "w1 playing again")
    assert w1.stop() == 0 and w2.stop() == 0


def test_broker_restart_worker_resends_its_outbox_and_every_batch_is_stored_once(system):
    system.publish(0)
    w = system.worker("w1")
    wait_for(lambda: system.status()["totals"]["games"] >= 8, T, "games stored before the restart")
    assert system.broker.stop() == 0
    # the worker plays on while the broker is away: its outbox grows on disk
    wait_for(lambda: len(outbox_files(system, "w1")) >= 3, T, "3 batches waiting in the outbox")
    system.broker = system.start_broker()
    system.row_where("w1", "back after the restart", lambda r: r["state"] == "Active")
    wait_for(lambda: system.status()["totals"]["games"] >= 24, T, "the outbox delivered")
    assert w.stop() == 0

    done = summary(w.log())
    assert done["outbox"] == 0 and not outbox_files(system, "w1")
    batches, blobs, samples = system.stored()
    # exactly once: every batch the worker made is stored, none twice
    assert len(batches) == done["batches"]
    assert samples.total_games == sum(b.games for b in batches) == done["games"]
    assert sum(len(decode_batch(b)) for b in blobs) == done["games"]
    assert system.status()["totals"]["games"] == done["games"]
    assert re.search(r"reconnecting|does not know this worker", w.log())


def test_batch_stored_before_a_crash_is_acked_as_duplicate_and_a_refused_one_is_set_aside(system):
    """A crash between the broker's fsync and the outbox delete leaves a stored batch in the outbox:
    the next run resends it and the broker acks it as a duplicate. A batch the broker refuses goes
    to outbox/rejected/ instead of being resent forever."""
    system.publish(0)
    records = SelfPlayRunner(system.settings.selfplay_config(), uniform_evaluator, worker_id="w3", seed=1).play(2)
    blob = encode_batch(records)
    stored = Batch(P.BatchHeader(batch_id="w3-stored", worker_id="w3", games=2,
                                 positions=sum(r.num_moves for r in records), generations=[0]), blob, created=1.0)
    junk = Batch(P.BatchHeader(batch_id="w3-junk", worker_id="w3", games=2, positions=5, generations=[0]),
                 b"not a batch", created=2.0)
    box = Outbox(Path(system.settings.self_play.data_dir) / "w3" / "outbox")
    box.put(stored)
    box.put(junk)
    system.client.request(P.Hello(worker_id="w3", board_size=5))  # the earlier run: stored, but the ack was lost
    ack = system.client.request(P.SubmitBatch(**dict(stored.header)), [blob]).message
    assert ack.duplicate is False

    w = system.worker("w3", "--games", "4")
    assert w.wait(T) == 0
    done = summary(w.log())
    assert (done["batches"], done["acked"], done["duplicates"], done["rejected"], done["outbox"]) == (1, 2, 1, 1, 0)
    assert (box.rejected_dir / "w3-junk.batch").exists() and "bad_batch" in (box.rejected_dir / "w3-junk.txt").read_text()
    assert re.search(r"ERROR broker refused batch w3-junk", w.log())
    batches, _, samples = system.stored()
    assert len(batches) == 2 and samples.total_games == 2 + 4  # the planted batch once, the new one once


FLAKY = """
import sys
sys.path.insert(0, {examples!r})
from custom_worker import ShortGameFilter
from azgo_selfplay import main

class FailOnce(ShortGameFilter):
    failed = False

    def on_games_finished(self, records):
        if not self.failed:
            self.failed = True
            raise RuntimeError("injected failure in on_games_finished")
        return super().on_games_finished(records)

sys.exit(main(FailOnce))
"""


def test_custom_worker_example_runs_and_a_failing_worker_recovers(system):
    sys.path.insert(0, str(EXAMPLES))
    try:
        import custom_worker
    finally:
        sys.path.remove(str(EXAMPLES))
    assert issubclass(custom_worker.ShortGameFilter, __import__("azgo_selfplay").SelfPlayWorker)
    flaky_script = system.tmp / "flaky.py"
    flaky_script.write_text(FLAKY.format(examples=str(EXAMPLES)))
    system.publish(0)
    example = system.script(EXAMPLES / "custom_worker.py", "custom", "--games", "12")
    flaky = system.script(flaky_script, "flaky")

    row = system.row_where("flaky", "Error", lambda r: r["state"] == "Error")
    assert "RuntimeError: injected failure" in row["error"]
    system.row_where("flaky", "recovered", lambda r: r["state"] == "Active" and r["games_total"] > 0 and not r["error"])

    assert example.wait(T) == 0
    log = (system.tmp / "script-custom.log").read_text()
    kept = int(re.search(r"custom worker: kept (\d+) games", log).group(1))
    custom_games = [g for g in system.games() if g.worker_id == "custom"]
    assert len(custom_games) == kept > 0
    assert all(g.num_moves >= custom_worker.MIN_MOVES for g in custom_games)
    flaky.terminate()
    assert flaky.wait(T) == 0
    assert "Traceback" in (system.tmp / "script-flaky.log").read_text()  # the exception was logged in full
