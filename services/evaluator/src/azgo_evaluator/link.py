"""The evaluator's connection to the broker: hello and heartbeats (to learn the current generation),
announcements, model fetches, rating reports, and samples of /status for the history.

Hello and heartbeats go out asynchronously (``BrokerClient.send`` / ``poll``), so a broker
that is away never stalls a game; ``pump`` is called between moves. The evaluator says hello
as a ``tool`` (not in the worker table) and heartbeats with generation -1 (it plays no
self-play generation, so it never counts as a model sync). Model fetches and reports are
blocking requests with the configured timeout; a failed report is sent again at the next
``pump`` after the broker answers.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from azgo_core import __version__
from azgo_core import protocol as P
from azgo_core.config import Settings
from azgo_runtime.client import BrokerClient, BrokerUnavailable, RemoteError, Subscriber
from azgo_runtime.curve import client_curve
from azgo_runtime.status import StatusUnavailable, fetch_status

log = logging.getLogger("azgo.evaluator.link")


def status_sample(status: dict) -> dict:
    """One status.jsonl row from the broker's /status: totals, the workers' summed rates, the learner."""
    workers = [w for w in status.get("workers", []) if w.get("state") != "Offline"]
    learner = status.get("learner") or {}
    model = status.get("model") or {}
    totals = status.get("totals", {})
    return {
        "time": time.time(), "games": totals.get("games", 0), "positions": totals.get("positions", 0),
        "games_per_s": sum(w.get("games_per_s", 0.0) for w in workers),
        "positions_per_s": sum(w.get("positions_per_s", 0.0) for w in workers),
        "nn_evals_per_s": sum(w.get("nn_evals_per_s", 0.0) for w in workers),
        "workers": len(workers), "workers_active": sum(w.get("state") == "Active" for w in workers),
        "generation": model.get("generation"), "learner_step": learner.get("step"), "loss_total": learner.get("loss_total"),
    }


class BrokerLink:
    """Requests to the broker for one evaluator (one thread)."""

    def __init__(self, settings: Settings, evaluator_id: str):
        d = settings.distributed
        self.settings, self.evaluator_id = settings, evaluator_id
        curve = client_curve(settings, "evaluator")
        self.client = BrokerClient(settings.router_endpoint(), timeout=d.request_timeout, curve=curve)
        self.sub = Subscriber(settings.pub_endpoint(), curve=curve)
        self.status_url = f"http://{d.broker_host}:{settings.broker.http_port}"
        self.interval = d.heartbeat_interval
        self.welcomed = False
        self.current = -1  # the broker's current generation, as last heard
        self.next_beat = 0.0
        self.unsent_report: P.EvalReport | None = None

    def hello(self) -> P.Hello:
        return P.Hello(worker_id=self.evaluator_id, role="tool", host=socket.gethostname(), code_version=__version__,
                       pid=os.getpid(), board_size=self.settings.board.size)

    def pump(self) -> None:
        """Handle replies and announcements; send the hello or heartbeat that is due, and a report left unsent."""
        for reply in self.client.poll(0):
            self._on_reply(reply.message)
        info = self.sub.latest(0)
        if info is not None:
            self.current = max(self.current, info.generation)
        now = time.monotonic()
        if now < self.next_beat:
            return
        self.next_beat = now + self.interval
        if self.client.overdue():  # the broker stopped answering: a fresh socket, hello again
            log.warning("no answer from the broker at %s; reconnecting", self.client.endpoint)
            self.client.connect()
            self.welcomed = False
        if not self.welcomed:
            if not self.client.pending:
                self.client.send(self.hello())
            return
        self.client.send(P.Heartbeat(worker_id=self.evaluator_id, generation=-1))
        if self.unsent_report is not None:
            self.report(self.unsent_report)

    def _on_reply(self, message: P.Message) -> None:
        if isinstance(message, P.Welcome):
            if not self.welcomed:
                log.info("connected to broker %s (current generation %s)", message.broker_id,
                         message.model.generation if message.model else "none")
            self.welcomed = True
            self.current = max(self.current, message.model.generation if message.model else -1)
        elif isinstance(message, P.HeartbeatAck):
            self.current = max(self.current, message.model.generation if message.model else -1)
        elif isinstance(message, P.Error):
            if message.code == P.ErrorCode.UNKNOWN_WORKER:
                self.welcomed = False  # the broker restarted: hello again
            else:
                log.warning("broker error: %s: %s", message.code.value, message.message)

    def fetch_model(self, generation: int) -> tuple[P.ModelInfo, bytes] | None:
        """The model file of ``generation`` (None when the broker is away or refuses)."""
        try:
            reply = self.client.request(P.GetModel(generation=generation))
        except (BrokerUnavailable, RemoteError) as e:
            log.warning("cannot fetch generation %s: %s", P.generation_id(generation), e)
            return None
        return reply.message.model, reply.blobs[0]

    def report(self, message: P.EvalReport) -> bool:
        """Send the ratings; kept for the next ``pump`` when the broker does not answer."""
        try:
            self.client.request(message)
        except BrokerUnavailable as e:
            log.warning("ratings not reported (will retry): %s", e)
            self.unsent_report = message
            return False
        except RemoteError as e:  # refused: resending the same report cannot help
            log.error("the broker refused the ratings: %s", e)
        self.unsent_report = None
        return True

    def sample_status(self) -> dict | None:
        try:
            return status_sample(fetch_status(self.status_url, timeout=2.0))
        except StatusUnavailable as e:
            log.debug("no status sample: %s", e)
            return None

    def close(self) -> None:
        self.client.close()
        self.sub.close()
