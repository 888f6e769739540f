"""The broker: one ZeroMQ poll loop over a ROUTER (requests) and a PUB (model announcements).

Shape of the ZeroMQ guide's mdbroker: ``run`` polls the ROUTER, ``serve_round`` reads every
request already waiting (up to ``ROUND_MAX``) and hands each to its handler (``handlers``,
an object given the store, models, workers and metrics; replies go out through
``replies.Replies``, in each peer's request order), then
commits the round: the game batches it accepted are fsynced together (group commit) and only
then acknowledged. A batch is checked beside the loop (``checking.BatchChecker``, a pool of threads),
so a slow check never delays a heartbeat; the loop polls the checker's wake-up socket too and
stores, fsyncs and acks what passed (``finish_checks``, ``commit_round``). ``tick`` runs
between rounds: liveness (``purge_workers``), the /status snapshot and status.txt
(``publish_status``, ``write_status``).

Every request gets exactly one reply with its ``rid``. A request that cannot be parsed gets
an ``Error`` naming the problem; a handler that raises gets ``Error(INTERNAL)`` naming the
exception; either way the loop goes on serving everybody. Every refusal is counted under its
code in ``azgo_batches_rejected_total{reason}`` and /status "rejected", and logged through a
rate limiter (``ratelog``): a flood of bad requests cannot flood the log. Frames on the ROUTER are
``[identity, header, *blobs]`` (see ``azgo_core.protocol``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
import uuid
from pathlib import Path

import zmq

from azgo_core import __version__
from azgo_core import protocol as P
from azgo_core.config import Settings
from azgo_runtime.curve import authorized_dir, server_keys

from .auth import Authenticator
from .checking import BatchChecker
from .dashboard import RECENT_BATCHES, Dashboard
from .handlers import HELLO_LINES, RequestHandlers
from .metrics import BrokerMetrics, HttpServer, Snapshot
from .models import ModelRegistry
from .ratelog import RateLimitedLog
from .replies import Replies
from .status import RATE_WINDOW, finite, format_table
from .store import GameStore
from .validate import BatchRules
from .workers import WorkerRegistry

log = logging.getLogger("azgo.broker")

ROUND_MAX = 64  # requests read per round before the group commit
TICK_SECONDS = 0.1  # poll timeout: how often liveness and the snapshot are looked at when idle
SNAPSHOT_SECONDS = 0.5  # the /status snapshot is rebuilt at least this often
FRAME_SLACK = P.MAX_HEADER_BYTES + (1 << 20)  # above max_batch_bytes, for the largest accepted frame


class Broker:
    """The broker's state (store, models, workers, metrics), sockets and loop; ``requests`` handles each request."""

    def __init__(self, settings: Settings, context: zmq.Context | None = None):
        b = self.config = settings.broker
        self.settings = settings
        self.broker_id = f"broker-{uuid.uuid4().hex[:12]}"
        self.started = time.monotonic()
        self.data_dir = Path(b.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = self._lock_data_dir()
        self.store = GameStore(self.data_dir / "games", segment_bytes=b.segment_bytes, fsync=b.fsync)
        self.models = ModelRegistry(self.data_dir / "models", settings.board.size)
        self.workers = WorkerRegistry(settings.distributed.liveness_seconds)
        self.rules = BatchRules(settings.board.size, settings.board.komi, b.max_batch_games, b.max_batch_bytes)
        self.metrics = BrokerMetrics()
        self.metrics.watch_disk(self.data_dir)  # free disk for the store-nearly-full alert
        self.log_limited = RateLimitedLog(log)  # per-request lines: a flood of bad requests cannot flood the log
        self.metrics.generation.set(self.models.current_generation)
        self.snapshot = Snapshot()
        # the web page's history and view; evaluation games from the evaluator's data dir when this host sees it
        self.dashboard = Dashboard(str(self.store.dir), str(self.models.dir), str(settings.evaluation.data_dir))
        self.context = context or zmq.Context.instance()
        self.curve = server_keys(settings)  # (public, secret) or None: CURVE off
        self.auth = (Authenticator(self.context, authorized_dir(settings), settings.security.reload_interval)
                     if self.curve else None)
        self.router, self.pub = self._bind_sockets()
        self.checker = BatchChecker(self.context, self.rules, self.models, threads=b.validation_threads)  # beside the loop
        self.replies = Replies(self.router, self.metrics, self.log_limited)
        self.requests = RequestHandlers(settings, self.broker_id, store=self.store, models=self.models,
                                        workers=self.workers, metrics=self.metrics, checker=self.checker,
                                        replies=self.replies, pub=self.pub, dashboard=self.dashboard,
                                        log_limited=self.log_limited, on_stored=self.publish_status)
        self.http = HttpServer(b.bind, b.http_port, self.metrics, self.snapshot)
        self._next_snapshot = self._next_status = 0.0
        self._denied_counted = 0
        self.publish_status()

    def _lock_data_dir(self):
        """Hold an exclusive lock on data_dir/broker.lock: two brokers must never share a game store."""
        path = self.data_dir / "broker.lock"
        f = open(path, "w")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise OSError(f"data dir {self.data_dir} is in use by another broker (lock {path})") from None
        f.write(f"{os.getpid()}\n")
        f.flush()
        return f

    def _bind_sockets(self) -> tuple[zmq.Socket, zmq.Socket]:
        b = self.config
        router = self.context.socket(zmq.ROUTER)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a reply to a vanished peer raises EHOSTUNREACH
        router.maxmsgsize = b.max_batch_bytes + FRAME_SLACK  # a bigger frame drops that peer's connection
        router.linger = 1000
        pub = self.context.socket(zmq.PUB)
        pub.linger = 0
        for sock in (router, pub):
            if self.curve:  # CURVE server: every connection is encrypted and must pass the allow-list (auth.py)
                sock.curve_publickey, sock.curve_secretkey = self.curve
                sock.curve_server = True
                sock.zap_domain = b"azgo"
        router.bind(f"tcp://{b.bind}:{b.router_port}")
        pub.bind(f"tcp://{b.bind}:{b.pub_port}")
        return router, pub

    # --- the loop -------------------------------------------------------------------------
    def run(self, stop) -> None:
        """Serve until ``stop`` (a StopFlag or anything with ``is_set``) is set."""
        self.log_start()
        self.http.start()
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.checker.wake, zmq.POLLIN)
        if self.auth:
            poller.register(self.auth.sock, zmq.POLLIN)
        while not stop.is_set():
            ready = dict(poller.poll(int(TICK_SECONDS * 1000)))
            if self.auth and self.auth.sock in ready:
                try:
                    self.auth.handle()
                except Exception:  # a broken handshake answer must not stop the broker
                    log.exception("ZAP handler failed")
            if self.router in ready:
                self.serve_round()
            if self.checker.wake in ready:
                self.requests.finish_checks()
                self.requests.commit_round()
            self.tick()
        log.info("stopping (signal %s)", getattr(stop, "signal", None))

    def log_start(self) -> None:
        """One line each: endpoints, HTTP port, store totals, current model."""
        b = self.config
        model = self.models.current
        log.info("broker %s (azgo %s): ROUTER tcp://%s:%d, PUB tcp://%s:%d", self.broker_id, __version__,
                 b.bind, b.router_port, b.bind, b.pub_port)
        log.info("HTTP /metrics /status /healthz on http://%s:%d", b.bind, self.http.port)
        log.info("game store %s: %d batches, %d games, %d positions, %d bytes", self.store.dir, len(self.store.entries),
                 self.store.total_games, self.store.total_positions, self.store.store_bytes)
        log.info("current model: %s", f"generation {P.generation_id(model.generation)} sha256 {model.sha256[:12]}"
                 if model else "none published yet")

    def serve_round(self) -> None:
        """Answer every request already waiting (up to ROUND_MAX), then commit and ack the round's batches."""
        for _ in range(ROUND_MAX):
            try:
                if self.auth is None:
                    frames = self.router.recv_multipart(zmq.NOBLOCK)
                else:
                    frames = self.admitted(self.router.recv_multipart(zmq.NOBLOCK, copy=False))
            except zmq.Again:
                break
            if frames is not None:
                self.dispatch(frames)
        self.requests.commit_round()

    def admitted(self, frames: list[zmq.Frame]) -> list[bytes] | None:
        """A request's frames if its connection's key (ZAP User-Id) is still allowed; else refuse it (revoked)."""
        try:
            user = frames[-1].get("User-Id") if len(frames) > 1 else None
        except zmq.ZMQError:  # no User-Id: not a connection our ZAP handler admitted
            user = None
        if self.auth.allowed(user):
            return [f.bytes for f in frames]
        identity = frames[0].bytes
        rid = 0
        try:  # answer the request's rid when its header says it, so the client matches the refusal
            rid = P.decode(frames[1].bytes, blobs=len(frames) - 2).rid
        except Exception:
            pass
        name = self.auth.name_of(user)
        self.replies.refuse(identity, P.error(P.ErrorCode.UNAUTHORIZED, f"key {name!r} ({(user or '?')[:8]}...) is no longer "
                                      "in the broker's allow-list", rid), f"request with key {name!r}")
        return None

    def tick(self) -> None:
        """Between rounds: liveness, and the status snapshot and file when due."""
        now = time.monotonic()
        self.snapshot.tick()
        try:
            if self.auth:
                self.auth.reload(now)
                self.metrics.auth_denied.inc(self.auth.denied - self._denied_counted)
                self._denied_counted = self.auth.denied
            self.purge_workers(now)
            self.log_limited.flush()
            if now >= self._next_snapshot:
                self._next_snapshot = now + min(SNAPSHOT_SECONDS, self.config.status_interval)
                self.publish_status()
            if now >= self._next_status:
                self._next_status = now + self.config.status_interval
                self.write_status()
        except Exception:  # a bug in the bookkeeping must not stop the service
            log.exception("broker housekeeping failed")

    def close(self) -> None:
        """Finish the checks under way, commit what is pending, write a last status, close sockets, HTTP and the store."""
        self.checker.stop()
        self.requests.finish_checks()
        self.checker.close()
        self.requests.commit_round()
        self.log_limited.flush(force=True)  # the counts of the lines held back this window
        self.publish_status()
        self.write_status()
        self.http.close()
        self.router.close()
        self.pub.close()
        if self.auth:
            self.auth.close()
        self.store.close()
        self._lock.close()

    # --- messages -------------------------------------------------------------------------
    def dispatch(self, frames: list[bytes]) -> None:
        """Decode one request, run its handler, send the reply (or leave it to the commit). Never raises.

        Every request that is refused, whatever the stage, is answered with an ``Error`` and
        counted by ``refuse`` under its code. A DEALER always sends a header frame, so every
        request that reaches us is answered; only a frame above the socket's ``maxmsgsize``
        never does: libzmq drops that peer's connection before we see anything.
        """
        try:
            self._dispatch(frames)
        except Exception as e:  # a bug in the refusal path itself: the loop must go on serving everybody
            self.log_limited.log(logging.ERROR, "dispatch failure", "request from %s: dispatch failed",
                                 frames[0].hex()[:16], exc_info=True)
            self.replies.refuse(frames[0], P.error(P.ErrorCode.INTERNAL, f"{type(e).__name__}: {e}"), "?", log_it=False)

    def _dispatch(self, frames: list[bytes]) -> None:
        identity, parts = frames[0], frames[1:]
        self.metrics.received(sum(len(f) for f in frames))
        if not parts:
            self.replies.refuse(identity, P.error(P.ErrorCode.BAD_MESSAGE, "empty message: no header frame"), "?")
            return
        try:
            msg = P.decode(parts[0], blobs=len(parts) - 1)
        except P.ProtocolError as e:
            self.metrics.messages.labels("invalid").inc()
            self.replies.refuse(identity, P.error_reply(e), "request")
            return
        except Exception as e:  # a decoder bug must cost one error reply, never the broker
            self.metrics.messages.labels("invalid").inc()
            self.log_limited.log(logging.ERROR, "decoder failure", "undecodable request from %s", identity.hex()[:16],
                                 exc_info=True)
            self.replies.refuse(identity, P.error(P.ErrorCode.BAD_MESSAGE, f"undecodable header: {type(e).__name__}: {e}"),
                        "request", log_it=False)
            return
        handler = self.requests.table.get(type(msg))
        if handler is None:
            self.metrics.messages.labels("invalid").inc()
            self.replies.refuse(identity, P.error(P.ErrorCode.UNKNOWN_TYPE, f"{msg.type!r} is a reply, not a request", msg.rid),
                        msg.type)
            return
        self.metrics.messages.labels(msg.type).inc()
        worker_id = getattr(msg, "worker_id", None)
        if worker_id is not None:
            self.workers.touch(worker_id, time.monotonic())
        try:
            reply = handler(msg, parts[1:], identity)
        except Exception as e:  # a bug: answer it, keep serving
            self.log_limited.log(logging.ERROR, f"{msg.type} handler failure", "handler for %s failed", msg.type,
                                 exc_info=True)
            reply = P.error(P.ErrorCode.INTERNAL, f"{type(e).__name__}: {e}"), []
        if reply is None:
            return
        message, blobs = reply
        message = message.model_copy(update={"rid": msg.rid})
        if isinstance(message, P.Error):
            sender = f"{msg.type} from {worker_id}" if worker_id else msg.type
            self.replies.refuse(identity, message, sender, log_it=message.code not in (P.ErrorCode.INTERNAL, P.ErrorCode.STORAGE))
        else:
            self.replies.send(identity, message, blobs)

    # --- housekeeping ---------------------------------------------------------------------
    def purge_workers(self, now: float) -> None:
        """Workers silent past the liveness window go Offline (and lose their per-worker series)."""
        for worker in self.workers.purge(now):
            self.log_limited.warning("offline", "worker %s (%s) is Offline: silent for %.1f s", worker.worker_id,
                                     P.quote(worker.host), now - worker.last_seen, limit=HELLO_LINES)
            self.metrics.forget_worker(worker.worker_id)

    def status(self) -> dict:
        """The /status document (see ``azgo_broker.status``)."""
        now = time.monotonic()
        store, model = self.store, self.models.current
        games_rate, positions_rate = store.recent_rates(RATE_WINDOW)
        learner, ratings, r = None, None, self.requests
        if r.learner is not None:
            learner = {**r.learner, "age_s": round(now - r.learner_at, 3)}
        if r.evaluation is not None:
            ratings = {**r.evaluation, "age_s": round(now - r.evaluation_at, 3)}
        return finite({
            "broker": {"id": self.broker_id, "version": __version__, "uptime_s": round(now - self.started, 3),
                       "data_dir": str(self.data_dir)},
            "model": model.model_dump(mode="json") if model else None,
            "workers": [w.row(now) for w in self.workers.selfplay()],
            "workers_by_state": self.workers.by_state(),
            "totals": {"games": store.total_games, "positions": store.total_positions, "batches": len(store.entries),
                       **self.metrics.totals, "store_bytes": store.store_bytes},
            "rates": {"games_per_s": games_rate, "positions_per_s": positions_rate},
            "learner": learner,
            "ratings": ratings,
        })

    def publish_status(self) -> None:
        """Rebuild the snapshot the HTTP thread serves, and the gauges drawn from it."""
        status = self.status()
        self.snapshot.publish(status)
        self.dashboard.record(status, self.metrics.sync_totals(), self.store.entries[-RECENT_BATCHES:], self.models)
        self.snapshot.view = self.dashboard.view
        m = self.metrics
        for state, n in status["workers_by_state"].items():
            m.workers.labels(state).set(n)
        m.store_bytes.set(status["totals"]["store_bytes"])
        m.store_games.set(status["totals"]["games"])
        m.store_positions.set(status["totals"]["positions"])

    def write_status(self) -> None:
        """Rewrite data_dir/status.txt atomically (rename over it), for ``watch cat``."""
        path = self.data_dir / "status.txt"
        tmp = path.with_name(".status.txt.tmp")
        try:
            tmp.write_text(format_table(self.snapshot.status()))
            os.replace(tmp, path)
        except OSError as e:  # a full disk must not stop the broker, nor fill its log (a line per status_interval)
            self.log_limited.log(logging.ERROR, "status.txt", "cannot write %s: %s", path, e)
