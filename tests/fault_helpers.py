"""A broker and self-play workers as real processes, and the evidence the fault tests read.

``Cluster(tmp_path, config)`` starts ``python -m azgo_broker`` and ``python -m azgo_selfplay``
(optionally behind a command prefix such as ``ip netns exec NS``) and reads what they leave:
/status (on ``broker.bind``, which need not be loopback), each worker's outbox and its journal
(``put`` per batch made, ``ack`` with seq and duplicate flag), and the broker's segments read
with ``azgo_broker.store.audit`` (read-only, while the broker runs).

``unavailable(why)`` is for a kernel feature the machine will not give (a network namespace, a
tmpfs mount: root only): the test is skipped, except with ``CI=true``, where ``.ci/run`` runs
as root and a missing feature is a failure.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path

import pytest
from procs import Service, get_json, wait_for

from azgo_broker.store import audit
from azgo_core import protocol as P
from azgo_core.config import load_settings
from azgo_core.model import AZNet, serialize_model
from azgo_runtime.client import BrokerClient
from azgo_runtime.curve import client_curve
from azgo_selfplay.outbox import SUFFIX, read_journal

T = 45.0
"""Deadline of one wait: generous for a loaded 2-core machine, never reached when things work."""


def unavailable(why: str) -> None:
    """Skip (fail with CI=true) a test that needs what this machine refused: ``why`` says what."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {why}: .ci/run runs the suite as root")
    pytest.skip(why)


class Cluster:
    """The processes of one test (``broker``, workers) and what they wrote."""

    def __init__(self, tmp: Path, config: Path, worker_prefix: tuple[str, ...] = ()):
        self.tmp, self.config, self.worker_prefix = tmp, config, worker_prefix
        self.settings = load_settings(config)
        b = self.settings.broker
        self.url = f"http://{b.bind}:{b.http_port}/status"
        self.broker: Service | None = None
        self.procs: list[Service] = []

    # --- processes ------------------------------------------------------------------------
    def start_broker(self, tag: str = "broker") -> Service:
        self.broker = self._track(Service("broker", self.config, log_dir=self.tmp, tag=tag))
        wait_for(self.status, T, "the broker's /status")
        return self.broker

    def worker(self, worker_id: str) -> Service:
        return self._track(Service("selfplay", self.config, "--worker-id", worker_id, log_dir=self.tmp,
                                   tag=f"selfplay-{worker_id}", prefix=self.worker_prefix))

    def learner(self) -> Service:
        return self._track(Service("learner", self.config, log_dir=self.tmp))

    def _track(self, service: Service) -> Service:
        self.procs.append(service)
        return service

    def close(self) -> None:
        for p in self.procs:
            p.stop(5)

    def dump_logs(self) -> None:
        for p in self.procs:
            if p.log_path.exists():
                print(f"----- {p.log_path.name}\n{p.log()[-6000:]}")

    # --- the broker -----------------------------------------------------------------------
    def publish(self, generation: int) -> None:
        blob = serialize_model(AZNet(self.settings.net_config()), generation=generation)
        with BrokerClient(self.settings.router_endpoint(), timeout=T, curve=client_curve(self.settings, "learner")) as client:
            client.request(P.PublishModel(generation=generation, sha256=hashlib.sha256(blob).hexdigest()), [blob])

    def status(self) -> dict:
        return get_json(self.url)

    def row(self, worker_id: str) -> dict | None:
        return next((w for w in self.status()["workers"] if w["worker_id"] == worker_id), None)

    def row_where(self, worker_id: str, what: str, predicate, timeout: float = T) -> dict:
        return wait_for(lambda: (r := self.row(worker_id)) is not None and predicate(r) and r, timeout,
                        f"{worker_id}: {what}")

    # --- evidence -------------------------------------------------------------------------
    def outbox_dir(self, worker_id: str) -> Path:
        return Path(self.settings.self_play.data_dir) / worker_id / "outbox"

    def outbox(self, worker_id: str) -> set[str]:
        """Batch ids waiting in the worker's outbox now."""
        return {p.name[: -len(SUFFIX)] for p in self.outbox_dir(worker_id).glob("*" + SUFFIX)}

    def journal(self, worker_id: str):
        return read_journal(self.outbox_dir(worker_id))

    @property
    def games_dir(self) -> Path:
        return Path(self.settings.broker.data_dir) / "games"

    def stored(self) -> Counter:
        """How many times each batch id is in the broker's segments; damage but a torn tail fails the test."""
        found = audit(self.games_dir)
        assert not [d for d in found.damage if not d.tail], f"damaged records in the store: {found.damage}"
        return Counter(r["batch_id"] for r in found.records)

    def check_exactly_once(self, worker_id: str, worker: Service) -> None:
        """Stop the worker cleanly; then every batch it made is acked and stored once, and nothing else of it."""
        assert worker.stop() == 0
        assert not self.outbox(worker_id), "batches left in the outbox after a clean stop"
        journal = self.journal(worker_id)
        made = [j.batch_id for j in journal if j.event == "put"]
        acked = {j.batch_id for j in journal if j.event == "ack"}
        stored = self.stored()
        mine = {b: n for b, n in stored.items() if b.startswith(worker_id + "-")}
        assert made and set(made) == acked == set(mine), "made, acked and stored batch ids differ"
        assert all(n == 1 for n in mine.values()), f"stored twice: {[b for b, n in mine.items() if n > 1]}"
        wait_for(lambda: self.status()["totals"]["batches"] == sum(stored.values()), T, "/status totals up to date")
