"""The worker's side of the broker session: model fetches and batch delivery.

Nothing here blocks the search. ``BrokerLink.pump(timeout)`` is called between runner steps;
the session (``azgo_runtime.session.BrokerSession``: hello, heartbeats, silence, reconnects)
reads the replies and announcements, and this link sends outbox batches while fewer than
``MAX_IN_FLIGHT`` await their ack. A batch request the broker never answered while it answered
others was lost on the way: it is sent again.

On every Welcome the whole outbox is queued again: a batch whose ack was lost is resent and
the broker, which stores a batch id once, acks it as a duplicate. Replies to a batch:

    BatchAck                                  delete the file (duplicate=True counts as stored)
    Error BAD_BATCH, WRONG_GENERATION, ...    move the file to outbox/rejected/, log an ERROR
    Error STORAGE, INTERNAL                   keep it, resend after a back-off delay
    Error UNKNOWN_WORKER (broker restarted)   hello again, then resend
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from azgo_core import protocol as P
from azgo_runtime.client import Backoff, Reply
from azgo_runtime.session import BrokerSession

from .outbox import Outbox

log = logging.getLogger("azgo.selfplay.link")

MAX_IN_FLIGHT = 4
"""Batches sent and not yet acknowledged."""
ACK_LOG_EVERY = 25
"""Log every this many acks at INFO (the first one, duplicates and refusals always)."""
PERMANENT = {P.ErrorCode.BAD_BATCH, P.ErrorCode.WRONG_GENERATION, P.ErrorCode.BAD_MESSAGE, P.ErrorCode.TOO_LARGE,
             P.ErrorCode.BAD_VERSION, P.ErrorCode.UNKNOWN_TYPE}
"""Batch refusals that a resend cannot cure."""


class BrokerLink(BrokerSession):
    """One worker's requests to the broker and its view of the broker's current model.

    ``describe()`` builds the heartbeat's figures (a ``Heartbeat`` without worker id) when one is due.
    What the worker reads: ``newest`` (newest ModelInfo the broker mentioned), ``take_model()``
    (a fetched model file), ``welcomed``.
    """

    def __init__(self, settings, hello: P.Hello, outbox: Outbox, describe: Callable[[], dict], *, curve: dict | None = None):
        super().__init__(settings, hello, keys="selfplay", curve=curve)
        d = settings.distributed
        self.outbox = outbox
        self.describe = describe
        self.retry_backoff = Backoff(d.reconnect_min, d.reconnect_max)  # batches the broker could not store
        self.fetch_backoff = Backoff(d.reconnect_min, d.reconnect_max)  # GetModel answered with an error
        self.queue: deque[str] = deque()  # batch ids to send, oldest first
        self.sending: set[str] = set()  # batch ids sent, ack awaited
        self.hold_batches_until = 0.0
        self.hold_model_until = 0.0  # after an error reply to GetModel: do not ask again at once
        self._model: tuple[P.ModelInfo, bytes] | None = None
        self.model_requested_at = 0.0
        self.acked = self.duplicates = self.rejected = 0

    # --- what the worker calls ------------------------------------------------------------
    def enqueue(self, batch_id: str) -> None:
        """A new batch is in the outbox: send it when a slot is free."""
        self.queue.append(batch_id)

    def request_model(self) -> bool:
        """Ask for the current model (unless a request is already out); its file comes from ``take_model``."""
        if not self.welcomed or self.waiting_for("model") or time.monotonic() < self.hold_model_until:
            return False
        self.send("model", P.GetModel())
        self.model_requested_at = time.monotonic()
        return True

    def take_model(self) -> tuple[P.ModelInfo, bytes] | None:
        """The (info, model file) of the last ModelData reply, once."""
        model, self._model = self._model, None
        return model

    def idle(self) -> bool:
        """True when every outbox batch is acked."""
        return len(self.outbox) == 0

    def drain(self, seconds: float) -> bool:
        """Keep delivering for up to ``seconds``, then report the final figures; True when the outbox is empty."""
        deadline = time.monotonic() + seconds
        while not self.idle() and time.monotonic() < deadline:
            self.pump(min(0.05, max(0.0, deadline - time.monotonic())))
        self.heartbeat_now()  # the last word: totals and the outbox left
        while self.waiting_for("heartbeat") and time.monotonic() < deadline:
            self.pump(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.idle()

    # --- the session's hooks --------------------------------------------------------------
    def heartbeat(self) -> P.Heartbeat:
        return P.Heartbeat(worker_id=self.hello.worker_id, **{**self.describe(), "outbox": len(self.outbox)})

    def on_pump(self, now: float) -> None:
        """Send outbox batches while fewer than MAX_IN_FLIGHT await their ack."""
        while self.queue and len(self.sending) < MAX_IN_FLIGHT and now >= self.hold_batches_until:
            batch_id = self.queue.popleft()
            if batch_id in self.sending:
                continue
            batch = self.outbox.get(batch_id)
            if batch is None:  # acked meanwhile, or found corrupt (moved aside and logged)
                continue
            message = P.SubmitBatch(**dict(batch.header))
            self.send("batch", message, [batch.blob], tag=batch_id)
            self.sending.add(batch_id)

    def on_welcome(self, welcome: P.Welcome) -> None:
        # every batch not acked is (re)sent: the broker acks a stored batch id again as a duplicate
        self.queue = deque(b for b in self.outbox.pending() if b not in self.sending)
        log.info("%d outbox batch(es) to send", len(self.queue))

    def on_reply(self, kind: str, batch_id: str | None, reply: Reply) -> None:
        msg = reply.message
        if isinstance(msg, P.Error):
            self._on_error(kind, batch_id, msg)
        elif kind == "model" and isinstance(msg, P.ModelData) and len(reply.blobs) == 1:
            self.fetch_backoff.reset()
            self._model = (msg.model, reply.blobs[0])
            self.note_model(msg.model, "fetch")
        elif kind == "batch" and isinstance(msg, P.BatchAck):
            self._on_ack(msg)
        else:
            log.error("unexpected %s reply to a %s request; ignored", msg.type, kind)

    def on_forgotten(self, kind: str, batch_id: str | None) -> None:
        if kind == "batch":
            log.warning("batch %s sent again (a second copy is acked as a duplicate)", batch_id)
            self.sending.discard(batch_id)
            self.queue.appendleft(batch_id)

    def on_lost(self) -> None:
        self.sending.clear()

    def on_new_model(self, info: P.ModelInfo, source: str) -> None:
        self.hold_model_until = 0.0  # news: fetch it now, whatever the last GetModel answered
        self.fetch_backoff.reset()

    # --- replies to batches and fetches ---------------------------------------------------
    def _on_ack(self, msg: P.BatchAck) -> None:
        self.sending.discard(msg.batch_id)
        self.outbox.ack(msg.batch_id, msg.seq, msg.duplicate)
        self.retry_backoff.reset()
        self.acked += 1
        self.duplicates += msg.duplicate
        if msg.duplicate:
            log.info("batch %s was already stored (seq %d): acked as a duplicate", msg.batch_id, msg.seq)
        elif self.acked == 1 or self.acked % ACK_LOG_EVERY == 0:
            log.info("batch %s stored as seq %d (%d acked so far, %d in the outbox)", msg.batch_id, msg.seq,
                     self.acked, len(self.outbox))
        else:
            log.debug("batch %s stored as seq %d", msg.batch_id, msg.seq)

    def _on_error(self, kind: str, batch_id: str | None, err: P.Error) -> None:
        code = err.code
        if batch_id is not None:
            self.sending.discard(batch_id)
        if code == P.ErrorCode.UNKNOWN_WORKER:  # the session says hello again; the batch waits for it
            if batch_id is not None:
                self.queue.appendleft(batch_id)
        elif kind == "batch" and code in PERMANENT:
            self.rejected += 1
            where = self.outbox.reject(batch_id, f"{code.value}: {err.message}")
            log.error("broker refused batch %s (%s: %s); moved to %s, it will not be resent",
                      batch_id, code.value, err.message, where)
        elif kind == "batch":
            delay = self.retry_backoff.delay()
            self.queue.append(batch_id)
            self.hold_batches_until = time.monotonic() + delay
            log.warning("broker could not take batch %s (%s: %s); kept, resending in %.1f s",
                        batch_id, code.value, err.message, delay)
        elif kind == "model":
            self.hold_model_until = time.monotonic() + self.fetch_backoff.delay()
            if code != P.ErrorCode.NO_MODEL:  # none published yet is normal at the start of a run
                log.warning("broker could not send the model (%s: %s)", code.value, err.message)
        else:
            log.warning("broker answered a %s with %s: %s", kind, code.value, err.message)
