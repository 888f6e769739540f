"""What the broker does with each request: one ``handle_*`` method per request type.

``RequestHandlers`` is given everything it works on (the store, models, workers, metrics, the
batch checker, the replies, the PUB socket, the dashboard) by ``server.Broker``, which owns
the sockets and the loop; ``table`` maps each request type to its handler. A handler returns
the reply and its blob frames, or None when the reply waits: a batch is checked beside the
loop (``checking``), stored by ``finish_checks`` and acknowledged by ``commit_round`` once the
round's single fsync (the group commit) has put it on disk. The learner's and the evaluator's
last reports are kept here for /status.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import zmq

from azgo_core import protocol as P
from azgo_core.config import Settings

from .checking import BatchChecker, CheckJob
from .dashboard import Dashboard
from .metrics import ELO_GENERATIONS, BrokerMetrics
from .models import ModelRegistry, PublishRefused
from .ratelog import RateLimitedLog
from .replies import Replies
from .store import GameStore, StoreError
from .workers import WorkerRegistry

log = logging.getLogger("azgo.broker")

SAMPLES_MAX_BATCHES = 1000  # batches per Samples reply (the header must stay under MAX_HEADER_BYTES)
HELLO_LINES = 100  # hello, duplicate and Offline lines per minute in full (refusals: ratelog.FIRST_PER_KIND per code)


@dataclass
class PendingAck:
    """A batch accepted in this round, acknowledged once the round is on disk."""

    identity: bytes
    rid: int
    batch_id: str
    seq: int
    duplicate: bool
    slot: list | None = None
    """The reply's place in its peer's order (``Broker.reserve``) when the batch went through the checker."""


Reply = tuple[P.Message, list[bytes]] | None  # None: answered later (batch acks after the commit)


class RequestHandlers:
    """The broker's request handlers (see the module docstring)."""

    def __init__(self, settings: Settings, broker_id: str, *, store: GameStore, models: ModelRegistry,
                 workers: WorkerRegistry, metrics: BrokerMetrics, checker: BatchChecker, replies: Replies,
                 pub: zmq.Socket, dashboard: Dashboard, log_limited: RateLimitedLog, on_stored: Callable[[], None]):
        self.settings, self.broker_id = settings, broker_id
        self.store, self.models, self.workers, self.metrics = store, models, workers, metrics
        self.checker, self.replies, self.pub, self.dashboard = checker, replies, pub, dashboard
        self.log_limited = log_limited
        self.on_stored = on_stored  # acked batches are in /status at once (the broker rebuilds its snapshot)
        self.round: list[PendingAck] = []
        self.checking: dict[str, list[tuple[bytes, int, list]]] = {}  # batch id under check -> later copies
        self.learner: dict | None = None  # the learner's last LearnerReport, for /status
        self.learner_at = 0.0
        self.evaluation: dict | None = None  # the evaluator's last EvalReport, for /status
        self.evaluation_at = 0.0
        self.table = {
            P.Hello: self.handle_hello, P.Heartbeat: self.handle_heartbeat, P.GetModel: self.handle_get_model,
            P.SubmitBatch: self.handle_submit, P.GetSamples: self.handle_get_samples,
            P.PublishModel: self.handle_publish, P.LearnerReport: self.handle_learner_report,
            P.EvalReport: self.handle_eval_report,
        }

    def handle_hello(self, msg: P.Hello, blobs: list[bytes], identity: bytes) -> Reply:
        """Register a worker (or the learner); answer with the current model and the heartbeat rules."""
        size = self.settings.board.size
        if msg.board_size != size:
            return P.Error(code=P.ErrorCode.BAD_MESSAGE,
                           message=f"hello for board size {msg.board_size}, this broker runs {size}x{size}"), []
        known = self.workers.get(msg.worker_id) is not None
        _, evicted = self.workers.hello(msg, time.monotonic(), time.time(), peer=identity)
        if evicted is not None:  # the table is full (made-up ids?): the least recently seen leaves it
            self.metrics.forget_worker(evicted.worker_id)
            self.log_limited.warning("worker evicted", "worker table full (%d): forgot %s, the least recently seen",
                                     self.workers.max_workers, evicted.worker_id)
        self.log_limited.info("hello", "%s %s said hello%s (host %s, gpu %s, code %s, pid %d)", msg.role, msg.worker_id,
                              " again" if known else "", P.quote(msg.host), P.quote(msg.gpu), P.quote(msg.code_version),
                              msg.pid, limit=HELLO_LINES)
        d = self.settings.distributed
        return P.Welcome(broker_id=self.broker_id, model=self.models.current, heartbeat_interval=d.heartbeat_interval,
                         liveness=d.liveness), []

    def handle_heartbeat(self, msg: P.Heartbeat, blobs: list[bytes], identity: bytes) -> Reply:
        """Record a worker's figures and state; tell it the current model."""
        worker, first_time = self.workers.heartbeat(msg, time.monotonic())
        if worker is None:
            return P.Error(code=P.ErrorCode.UNKNOWN_WORKER,
                           message=f"worker {msg.worker_id!r} has not said hello to this broker: say hello again"), []
        if first_time:
            self.observe_sync(worker.joined, msg.generation)
        if worker.role == "selfplay":
            self.metrics.worker_rates(worker.worker_id, msg.games_per_s, msg.nn_evals_per_s, msg.positions_per_s)
        if msg.state == P.WorkerState.ERROR:
            log.warning("worker %s reports an error: %s", msg.worker_id, msg.error or "(no message)")
        return P.HeartbeatAck(model=self.models.current), []

    def observe_sync(self, joined: float, generation: int) -> None:
        """Model sync time: publish of ``generation`` to the first heartbeat playing it (workers present at the publish)."""
        published = self.models.published_at(generation)
        if published is not None and published >= joined:
            self.metrics.sync.observe(max(0.0, time.time() - published))

    def handle_get_model(self, msg: P.GetModel, blobs: list[bytes], identity: bytes) -> Reply:
        """The model file of a generation (None: the current one) as one blob."""
        found = self.models.get(msg.generation)
        if found is None:
            current = self.models.current_generation
            text = ("no model has been published yet" if current < 0 else
                    f"generation {msg.generation} was never published (current {current})")
            return P.Error(code=P.ErrorCode.NO_MODEL, message=text), []
        info, data = found
        return P.ModelData(model=info), [data]

    def handle_submit(self, msg: P.SubmitBatch, blobs: list[bytes], identity: bytes) -> Reply:
        """Validate and append a game batch; its ack waits for the round's fsync. A known batch id is acked again.

        Only the connection that said hello as ``msg.worker_id`` may submit as it (``foreign``): a batch
        under an id that never said hello is refused ``UNKNOWN_WORKER`` at once; one from another
        connection is checked like any batch (so what is wrong with it is named first) and, if sound,
        refused ``UNKNOWN_WORKER`` instead of stored. An honest worker, after a broker restart or a
        reconnect, says hello again and resends."""
        if self.workers.get(msg.worker_id) is None:
            return self.foreign(msg.worker_id, identity), []
        seq = self.store.seq_of(msg.batch_id)
        if seq is not None:
            self.count_duplicate(msg)
            return P.BatchAck(batch_id=msg.batch_id, duplicate=True, seq=seq), []
        seq = self.store.pending_seq_of(msg.batch_id)
        if seq is not None:  # the same batch twice in one round: ack both after the commit
            self.round.append(PendingAck(identity, msg.rid, msg.batch_id, seq, duplicate=True))
            return None
        waiting = self.checking.get(msg.batch_id)
        if waiting is not None:  # the same batch again while it is checked: answered with the first copy's verdict
            waiting.append((identity, msg.rid, self.replies.reserve(identity)))
            return None
        if self.checker.busy(len(blobs[0])):
            return P.error(P.ErrorCode.STORAGE, f"batch {msg.batch_id}: the broker is busy checking "
                                                f"{self.checker.backlog_bytes} bytes of batches: retry later"), []
        self.checking[msg.batch_id] = []
        # checked beside the loop (checking.py); this peer's later replies wait for this one's: it is answered in order
        self.checker.submit(CheckJob(identity, msg, blobs[0], slot=self.replies.reserve(identity)))
        return None

    def foreign(self, worker_id: str, identity: bytes) -> P.Error | None:
        """The refusal of a batch under ``worker_id`` from connection ``identity``, None when that
        connection said hello as it."""
        worker = self.workers.get(worker_id)
        if worker is not None and worker.peer == identity:
            return None
        why = "has not said hello to this broker" if worker is None else "said hello on another connection"
        return P.Error(code=P.ErrorCode.UNKNOWN_WORKER,
                       message=f"worker {worker_id!r} {why}: say hello (again) on this connection")

    def finish_checks(self, wait: float = 0.0) -> None:
        """Store the batches whose check has passed (acked by ``commit_round``), refuse the others; with
        ``wait`` (seconds: closing, tests), until no batch is under check or the time is up."""
        deadline = time.monotonic() + wait
        self._finish_checked()
        while self.checking and (left := deadline - time.monotonic()) > 0:
            self.checker.wake.poll(max(1, int(left * 1000)))
            self._finish_checked()

    def _finish_checked(self) -> None:
        for job in self.checker.done():
            msg = job.msg
            copies = self.checking.pop(msg.batch_id, [])
            foreign = self.foreign(msg.worker_id, job.identity) if job.error is None else None
            if foreign is not None:  # sound, but not from the connection that said hello as its worker
                for identity, rid, slot in [(job.identity, msg.rid, job.slot), *copies]:
                    self.replies.refuse(identity, foreign.model_copy(update={"rid": rid}), f"submit_batch from {msg.worker_id}",
                                slot=slot)
                continue
            if job.error is not None:
                error = P.error(job.error.code, f"batch {msg.batch_id}: {job.error.reason}")
                for identity, rid, slot in [(job.identity, msg.rid, job.slot), *copies]:
                    self.replies.refuse(identity, error.model_copy(update={"rid": rid}), f"submit_batch from {msg.worker_id}",
                                log_it=job.error.code != P.ErrorCode.INTERNAL, slot=slot)
                continue
            try:
                seq = self.store.append(msg.header, job.blob)
            except StoreError as e:
                # a full disk refuses every worker's every retry: the first lines of each minute, then a count
                self.log_limited.log(logging.ERROR, "not stored", "batch %s not stored: %s", msg.batch_id, e)
                for identity, rid, slot in [(job.identity, msg.rid, job.slot), *copies]:
                    self.replies.refuse(identity, P.error(P.ErrorCode.STORAGE, f"batch {msg.batch_id} not stored: {e}", rid),
                                f"submit_batch from {msg.worker_id}", log_it=False, slot=slot)
                continue
            self.round.append(PendingAck(job.identity, msg.rid, msg.batch_id, seq, duplicate=False, slot=job.slot))
            self.round.extend(PendingAck(identity, rid, msg.batch_id, seq, duplicate=True, slot=slot)
                              for identity, rid, slot in copies)

    def count_duplicate(self, msg: P.SubmitBatch) -> None:
        self.metrics.duplicate()
        self.log_limited.info("duplicate", "batch %s from %s is a duplicate: acked again, not stored", msg.batch_id,
                              msg.worker_id, limit=HELLO_LINES)

    def commit_round(self) -> None:
        """fsync the round's batches once, then ack them; on a storage failure none is stored or acked."""
        if not self.round:
            return
        acks, self.round = self.round, []
        try:
            stored = self.store.commit()
        except StoreError as e:
            log.error("game store commit failed, %d batch(es) not stored: %s", len(acks), e)
            for ack in acks:
                self.replies.send(ack.identity, P.Error(rid=ack.rid, code=P.ErrorCode.STORAGE,
                                                message=f"batch {ack.batch_id} not stored: {e}"), slot=ack.slot)
            return
        for entry in stored:
            self.metrics.batches.inc()
            self.metrics.games.inc(entry.header.games)
            self.metrics.positions.inc(entry.header.positions)
        if stored:  # an acked batch is in /status already (its check no longer holds the loop until the next snapshot)
            self.on_stored()
        for ack in acks:
            if ack.duplicate:
                self.metrics.duplicate()
            self.replies.send(ack.identity, P.BatchAck(rid=ack.rid, batch_id=ack.batch_id, duplicate=ack.duplicate, seq=ack.seq),
                      slot=ack.slot)

    def handle_get_samples(self, msg: P.GetSamples, blobs: list[bytes], identity: bytes) -> Reply:
        """Stored batches after ``after`` within the last ``window`` positions, oldest first, one blob each."""
        window = self.store.window(msg.after, msg.window, msg.max_bytes, max_count=SAMPLES_MAX_BATCHES)
        try:
            data = [self.store.read_blob(e) for e in window.entries]
        except StoreError as e:
            log.error("%s", e)
            return P.Error(code=P.ErrorCode.STORAGE, message=str(e)), []
        batches = [P.StoredBatch(seq=e.seq, games=e.header.games, positions=e.header.positions) for e in window.entries]
        return P.Samples(batches=batches, more=window.more, total_positions=self.store.total_positions,
                         total_games=self.store.total_games, last_seq=self.store.last_seq), data

    def handle_publish(self, msg: P.PublishModel, blobs: list[bytes], identity: bytes) -> Reply:
        """Validate and store a new generation, then announce it on the PUB socket."""
        try:
            info, new = self.models.publish(msg.generation, msg.sha256, blobs[0])
        except PublishRefused as e:
            return P.error(e.code, str(e)), []  # dispatch counts and logs it (refuse)
        if new:
            self.metrics.generation.set(info.generation)
            self.announce(info)
        return P.ModelAck(model=info), []

    def announce(self, info: P.ModelInfo) -> None:
        """Tell every subscriber the new current generation."""
        header = P.encode(P.Announce(model=info))
        self.pub.send_multipart([P.ANNOUNCE_TOPIC, header])
        self.metrics.sent(len(P.ANNOUNCE_TOPIC) + len(header))

    def handle_learner_report(self, msg: P.LearnerReport, blobs: list[bytes], identity: bytes) -> Reply:
        """Keep the learner's latest figures for /status and the metrics."""
        self.learner = msg.model_dump(exclude={"v", "rid", "type"})
        self.learner_at = time.monotonic()
        m = self.metrics
        m.learner_steps.set(msg.step)
        m.learner_samples.set(msg.samples_trained)
        m.learner_rate.set(msg.samples_per_s)
        for kind, value in (("policy", msg.loss_policy), ("value", msg.loss_value), ("total", msg.loss_total)):
            m.learner_loss.labels(kind).set(value)
        if msg.health is not None:
            for figure, value in msg.health.model_dump(exclude={"generation"}).items():
                m.health.labels(figure).set(float("nan") if value is None else value)
        m.health_warnings.set(len(msg.health_warnings))
        return P.Ok(), []

    def handle_eval_report(self, msg: P.EvalReport, blobs: list[bytes], identity: bytes) -> Reply:
        """Keep the evaluator's ratings for /status; azgo_elo{generation} for the newest ELO_GENERATIONS."""
        generations = sorted((r for r in msg.ratings if r.generation is not None), key=lambda r: r.generation)
        newest = generations[-ELO_GENERATIONS:]
        self.metrics.eval_ratings({P.generation_id(r.generation): (r.elo, r.low, r.high) for r in newest},
                                  msg.games_total, msg.matches_total)
        anchors = [r for r in msg.ratings if r.generation is None]
        self.evaluation = {
            "evaluator_id": msg.evaluator_id, "anchor": msg.anchor, "games_total": msg.games_total,
            "matches_total": msg.matches_total, "best_generation": msg.best_generation,
            "latest": newest[-1].model_dump() if newest else None,
            "generations": [r.model_dump() for r in newest], "anchors": [r.model_dump() for r in anchors],
        }
        self.evaluation_at = time.monotonic()
        self.dashboard.rate(msg.anchor, msg.ratings)  # every generation's rating, for the web page's Elo chart
        return P.Ok(), []
