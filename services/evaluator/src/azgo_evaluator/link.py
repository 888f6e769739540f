"""The evaluator's side of the broker session: model fetches, rating reports, /status samples.

The session (``azgo_runtime.session.BrokerSession``) says hello, heartbeats and hears the
broker's current generation (Welcome, heartbeat acks, announcements) without blocking, so a
broker that is away never stalls a game; ``pump`` is called between moves. The evaluator says
hello as a ``tool`` (not in the worker table) and heartbeats with generation -1 (it plays no
self-play generation, so it never counts as a model sync). Model fetches and reports are
blocking calls with the configured timeout, tried once; a report that was not delivered is
sent again from ``pump`` once per heartbeat interval.
"""

from __future__ import annotations

import logging
import time

from azgo_core import protocol as P
from azgo_core.config import Settings
from azgo_runtime.client import BrokerUnavailable, RemoteError
from azgo_runtime.session import BrokerSession, hello_message
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


class BrokerLink(BrokerSession):
    """The evaluator's session with the broker (one thread)."""

    def __init__(self, settings: Settings, evaluator_id: str):
        super().__init__(settings, hello_message(settings, evaluator_id, "tool"), keys="evaluator")
        self.status_url = f"http://{settings.distributed.broker_host}:{settings.broker.http_port}"
        self.unsent_report: P.EvalReport | None = None
        self.next_report_try = 0.0
        self.start()

    @property
    def current(self) -> int:
        """The broker's current generation, as last heard (-1: none yet)."""
        return -1 if self.newest is None else self.newest.generation

    def on_pump(self, now: float) -> None:
        if self.unsent_report is not None and now >= self.next_report_try:
            self.next_report_try = now + self.heartbeat_interval
            self.report(self.unsent_report)

    def fetch_model(self, generation: int) -> tuple[P.ModelInfo, bytes] | None:
        """The model file of ``generation`` (None when the broker is away or refuses)."""
        try:
            reply = self.call(P.GetModel(generation=generation), retry=False)
        except (BrokerUnavailable, RemoteError) as e:
            log.warning("cannot fetch generation %s: %s", P.generation_id(generation), e)
            return None
        return reply.message.model, reply.blobs[0]

    def report(self, message: P.EvalReport) -> bool:
        """Send the ratings; kept for the next ``pump`` when the broker does not answer."""
        try:
            self.call(message, retry=False)
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

