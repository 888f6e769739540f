"""The broker's Prometheus metrics and its HTTP endpoint (/metrics, /status, /healthz, and the dashboard).

Metric names carry the ``azgo_`` prefix and base units; counters end in ``_total``; labels
are bounded (``reason`` = an ``ErrorCode``, ``type`` = a message type or ``invalid``,
``state`` = a ``WorkerState``, ``worker`` = a live worker's id, removed when it goes Offline,
``generation`` = one of the last ``ELO_GENERATIONS`` rated generations).

The HTTP server runs in a daemon thread and never touches the broker's state: /status
serves the snapshot the loop thread last published (``Snapshot.publish`` swaps a reference
under a lock), /metrics the broker-owned ``CollectorRegistry`` (prometheus_client metrics
are thread-safe), /healthz whether the loop has ticked within ``HEALTHY_WITHIN`` seconds.
Every other path goes to the dashboard (``pages.route``: the page at /, its JSON under /api/),
which reads the loop's last published ``dashboard.View``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from azgo_core.protocol import WorkerState

from . import pages
from .dashboard import View

log = logging.getLogger("azgo.broker.http")

HEALTHY_WITHIN = 5.0  # seconds since the loop's last tick for /healthz to say ok
ELO_GENERATIONS = 50  # azgo_elo keeps the newest this many rated generations
SYNC_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class BrokerMetrics:
    """Every metric the broker exports, on its own registry."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.totals = {"duplicates": 0, "rejected": 0, "bytes_in": 0, "bytes_out": 0}
        """The /status totals of the counters below that have them (kept by ``received``, ``sent``, ...)."""
        self.games = Counter("azgo_games_received_total", "Games stored", registry=r)
        self.positions = Counter("azgo_positions_received_total", "Positions (moves) stored", registry=r)
        self.batches = Counter("azgo_batches_received_total", "Batches stored", registry=r)
        self.rejected = Counter("azgo_batches_rejected_total",  # every refused request, not only batches (the name stays)
                                "Requests refused (answered with an Error), by error code", ["reason"], registry=r)
        self.auth_denied = Counter("azgo_connections_refused", "Connections refused by the CURVE allow-list",
                                   registry=r)
        self.duplicates = Counter("azgo_duplicate_batches_total", "Batches received again and not stored", registry=r)
        self.messages = Counter("azgo_messages_total", "Requests received, by type", ["type"], registry=r)
        self.workers = Gauge("azgo_workers", "Self-play workers, by state", ["state"], registry=r)
        for state in WorkerState:
            self.workers.labels(state.value).set(0)
        self.generation = Gauge("azgo_model_generation", "Current model generation (-1: none)", registry=r)
        self.generation.set(-1)
        self.sync = Histogram("azgo_model_sync_seconds", "Seconds from a publish until a worker plays with it",
                              buckets=SYNC_BUCKETS, registry=r)
        self.bytes_in = Counter("azgo_bytes_received_total", "Bytes received on the ROUTER socket", registry=r)
        self.bytes_out = Counter("azgo_bytes_sent_total", "Bytes sent on the ROUTER and PUB sockets", registry=r)
        self.learner_steps = Gauge("azgo_learner_steps", "Learner optimisation steps", registry=r)
        self.learner_loss = Gauge("azgo_learner_loss", "Learner loss, by kind", ["kind"], registry=r)
        self.learner_rate = Gauge("azgo_learner_samples_per_second", "Learner training samples per second", registry=r)
        self.learner_samples = Gauge("azgo_learner_samples_trained", "Samples the learner has trained on", registry=r)
        self.health = Gauge("azgo_selfplay_health", "Training health of the learner's recent self-play games, by figure "
                            "(black_win_share, resigned_share, mean_moves, white_passes_first_share, first_pass_move, "
                            "false_resignation_rate, games); NaN while unknown", ["figure"], registry=r)
        self.health_warnings = Gauge("azgo_selfplay_health_warnings", "Training-health warnings now raised "
                                     "(one colour winning, games cut short)", registry=r)
        self.sp_games = Gauge("azgo_selfplay_games_per_second", "Self-play games per second, by worker",
                              ["worker"], registry=r)
        self.sp_evals = Gauge("azgo_selfplay_nn_evals_per_second", "Network evaluations per second, by worker",
                              ["worker"], registry=r)
        self.sp_positions = Gauge("azgo_selfplay_positions_per_second", "Self-play positions per second, by worker",
                                  ["worker"], registry=r)
        self.store_bytes = Gauge("azgo_store_bytes", "Bytes in the game store", registry=r)
        self.store_games = Gauge("azgo_store_games", "Games in the game store", registry=r)
        self.store_positions = Gauge("azgo_store_positions", "Positions in the game store", registry=r)
        self.store_free = Gauge("azgo_store_free_bytes", "Bytes free (to the broker) on the data dir's file system",
                                registry=r)
        self.store_capacity = Gauge("azgo_store_capacity_bytes", "Size of the data dir's file system", registry=r)
        self.elo = Gauge("azgo_elo", "Elo of a model generation (evaluator's fit, random player = 0)", ["generation"],
                         registry=r)
        self.elo_low = Gauge("azgo_elo_low", "Lower end of the Elo confidence interval", ["generation"], registry=r)
        self.elo_high = Gauge("azgo_elo_high", "Upper end of the Elo confidence interval", ["generation"], registry=r)
        self.eval_games = Counter("azgo_eval_games_total", "Evaluation games played", registry=r)
        self.eval_matches = Counter("azgo_eval_matches_total", "Evaluation matches played", registry=r)
        self._elo_labels: set[str] = set()
        self._eval_totals = (0, 0)

    def eval_ratings(self, ratings: dict[str, tuple[float, float, float]], games_total: int, matches_total: int) -> None:
        """Set azgo_elo{generation} to ``ratings`` (generation id -> elo, low, high), dropping labels no longer
        reported (the series stay bounded), and advance the evaluation counters to the reported totals."""
        for gone in self._elo_labels - set(ratings):
            for gauge in (self.elo, self.elo_low, self.elo_high):
                gauge.remove(gone)
        for label, (elo, low, high) in ratings.items():
            self.elo.labels(label).set(elo)
            self.elo_low.labels(label).set(low)
            self.elo_high.labels(label).set(high)
        self._elo_labels = set(ratings)
        games, matches = self._eval_totals
        self.eval_games.inc(max(0, games_total - games))  # totals since the evaluator's data began: count the news
        self.eval_matches.inc(max(0, matches_total - matches))
        self._eval_totals = (max(games, games_total), max(matches, matches_total))

    def watch_disk(self, path) -> None:
        """azgo_store_free_bytes and azgo_store_capacity_bytes of ``path``'s file system, read at each scrape."""
        def figure(free: bool) -> float:
            try:
                st = os.statvfs(path)
            except OSError:
                return float("nan")
            return float((st.f_bavail if free else st.f_blocks) * st.f_frsize)

        self.store_free.set_function(lambda: figure(True))
        self.store_capacity.set_function(lambda: figure(False))

    def worker_rates(self, worker_id: str, games: float, evals: float, positions: float) -> None:
        self.sp_games.labels(worker_id).set(games)
        self.sp_evals.labels(worker_id).set(evals)
        self.sp_positions.labels(worker_id).set(positions)

    def forget_worker(self, worker_id: str) -> None:
        """Drop a worker's labelled series (it went Offline): keeps label sets bounded."""
        for gauge in (self.sp_games, self.sp_evals, self.sp_positions):
            try:
                gauge.remove(worker_id)
            except KeyError:
                pass

    # --- the counts /status shows: counted here once, read back without collecting the registry ---
    def received(self, size: int) -> None:
        """Bytes of a request read from the ROUTER socket."""
        self.bytes_in.inc(size)
        self.totals["bytes_in"] += size

    def sent(self, size: int) -> None:
        """Bytes of a reply or an announcement sent."""
        self.bytes_out.inc(size)
        self.totals["bytes_out"] += size

    def refused(self, code: str) -> None:
        """A request answered with an Error of ``code``."""
        self.rejected.labels(code).inc()
        self.totals["rejected"] += 1

    def duplicate(self) -> None:
        """A batch received again and acked without being stored."""
        self.duplicates.inc()
        self.totals["duplicates"] += 1

    def sync_totals(self) -> tuple[float, float]:
        """(sum of seconds, count) of azgo_model_sync_seconds so far: the dashboard plots the mean per interval."""
        total = count = 0.0
        for sample in self.sync.collect()[0].samples:
            if sample.name.endswith("_sum"):
                total = sample.value
            elif sample.name.endswith("_count"):
                count = sample.value
        return total, count

    def text(self) -> bytes:
        return generate_latest(self.registry)


class Snapshot:
    """What the HTTP thread serves: the latest /status dict and the loop's last tick."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: dict = {}
        self.last_tick = time.monotonic()
        self.view = View()  # the dashboard's data: swapped whole by the loop thread, never mutated

    def publish(self, status: dict) -> None:
        with self._lock:
            self._status = status

    def status(self) -> dict:
        with self._lock:
            return self._status

    def tick(self) -> None:
        self.last_tick = time.monotonic()  # one float store: atomic under the GIL

    def healthy(self) -> bool:
        return time.monotonic() - self.last_tick < HEALTHY_WITHIN


def _handler(metrics: BrokerMetrics, snapshot: Snapshot) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            path, _, query = self.path.partition("?")
            if path == "/metrics":
                self._send(200, metrics.text(), CONTENT_TYPE_LATEST)
            elif path == "/status":
                body = json.dumps(snapshot.status(), indent=1, allow_nan=False).encode()
                self._send(200, body, "application/json")
            elif path == "/healthz":
                ok = snapshot.healthy()
                self._send(200 if ok else 503, b"ok\n" if ok else b"broker loop stalled\n", "text/plain")
            else:
                self._dashboard(path, query)

        def _dashboard(self, path: str, query: str) -> None:
            try:
                reply = pages.route(path, query, snapshot.view)
            except Exception as e:  # a store or model file that cannot be read: say so, keep serving
                log.warning("dashboard %s failed: %s: %s", path, type(e).__name__, e)
                self._send(500, f"{type(e).__name__}: {e}\n".encode(), "text/plain")
                return
            if reply is None:
                self._send(404, f"not found: {path} (try /, /metrics, /status, /healthz)\n".encode(), "text/plain")
            elif reply.file is not None:
                self._send_file(reply)
            else:
                self._send(reply.status, reply.body, reply.content_type, reply.headers)

        def _send_file(self, reply: pages.Reply) -> None:
            try:
                f = open(reply.file, "rb")
            except OSError as e:
                self._send(404, f"cannot open the model file: {e.strerror}\n".encode(), "text/plain")
                return
            with f:
                self.send_response(200)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(os.fstat(f.fileno()).st_size))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                try:
                    self.end_headers()
                    shutil.copyfileobj(f, self.wfile)
                except (BrokenPipeError, ConnectionResetError):
                    log.debug("%s hung up during %s", self.address_string(), self.path)

        def _send(self, code: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            try:
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting: not the broker's fault
                log.debug("%s hung up before the reply to %s", self.address_string(), self.path)

        def log_message(self, format: str, *args) -> None:  # quiet: scrapes every few seconds
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


class HttpServer:
    """/metrics, /status and /healthz on one port, served from a daemon thread."""

    def __init__(self, bind: str, port: int, metrics: BrokerMetrics, snapshot: Snapshot):
        self.server = ThreadingHTTPServer((bind, port), _handler(metrics, snapshot))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="broker-http", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        if self.thread.is_alive():  # shutdown() waits for serve_forever: only when it runs
            self.server.shutdown()
        self.server.server_close()
