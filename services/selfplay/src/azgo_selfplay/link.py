"""The worker's connection to the broker: hello, heartbeats, model fetches, batch delivery.

Nothing here blocks the search. ``BrokerLink.pump(timeout)`` is called between runner steps:
it reads the replies that have arrived (``BrokerClient.poll``), the model announcements on the
SUB socket, sends a heartbeat when one is due and outbox batches while fewer than
``MAX_IN_FLIGHT`` await their ack, and notices when the broker has gone silent.

Connection states (the Paranoid Pirate pattern of the ZeroMQ guide):

    hello sent ──Welcome──► welcomed ──(a request overdue and no reply at all for
        ▲                                request_timeout seconds)──► lost: wait a Backoff delay
        └───────────── reconnect: fresh DEALER + SUB sockets, hello again ◄─────┘

Any reply proves the broker alive. The broker is one thread, and a slow round (a first
compile, a slow fsync, loading a published model) stalls every worker's replies at once for
seconds; heartbeats keep their cadence, but only ``distributed.request_timeout`` seconds of
total silence while a request is outstanding means the broker is gone. A request unanswered
for that long while other replies do arrive was lost on the way (the broker drops a reply to
a peer that is not reading): it is forgotten and, for a batch or a hello, sent again.

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
from azgo_runtime.client import Backoff, BrokerClient, Reply, Subscriber
from azgo_runtime.curve import client_curve

from .outbox import Outbox

log = logging.getLogger("azgo.selfplay.link")

MAX_IN_FLIGHT = 4
"""Batches sent and not yet acknowledged."""
ACK_LOG_EVERY = 25
"""Log every this many acks at INFO (the first one, duplicates and refusals always)."""
PERMANENT = {P.ErrorCode.BAD_BATCH, P.ErrorCode.WRONG_GENERATION, P.ErrorCode.BAD_MESSAGE, P.ErrorCode.TOO_LARGE,
             P.ErrorCode.BAD_VERSION, P.ErrorCode.UNKNOWN_TYPE}
"""Batch refusals that a resend cannot cure."""


class BrokerLink:
    """One worker's requests to the broker and its view of the broker's current model.

    ``describe()`` builds the heartbeat's figures (a ``Heartbeat`` without worker id) when one is due.
    What the worker reads: ``newest`` (newest ModelInfo the broker mentioned), ``take_model()``
    (a fetched model file), ``welcomed``.
    """

    def __init__(self, settings, hello: P.Hello, outbox: Outbox, describe: Callable[[], dict], *, curve: dict | None = None):
        curve = curve or client_curve(settings, "selfplay")
        d = settings.distributed
        self.hello = hello
        self.outbox = outbox
        self.describe = describe
        self.client = BrokerClient(settings.router_endpoint(), timeout=d.request_timeout, curve=curve)
        self.sub = Subscriber(settings.pub_endpoint(), curve=curve)
        self.backoff = Backoff(d.reconnect_min, d.reconnect_max)
        self.retry_backoff = Backoff(d.reconnect_min, d.reconnect_max)  # batches the broker could not store
        self.fetch_backoff = Backoff(d.reconnect_min, d.reconnect_max)  # GetModel answered with an error
        self.heartbeat_interval = d.heartbeat_interval
        self.last_reply = 0.0  # monotonic time of the last reply of any kind
        self.requests: dict[int, tuple[str, str | None]] = {}  # rid -> (kind, batch id)
        self.queue: deque[str] = deque()  # batch ids to send, oldest first
        self.sending: set[str] = set()  # batch ids sent, ack awaited
        self.welcomed = False
        self.reconnect_at: float | None = None
        self.hold_batches_until = 0.0
        self.hold_model_until = 0.0  # after an error reply to GetModel: do not ask again at once
        self.next_heartbeat = 0.0
        self.newest: P.ModelInfo | None = None
        self._model: tuple[P.ModelInfo, bytes] | None = None
        self.model_requested_at = 0.0
        self.acked = self.duplicates = self.rejected = self.reconnects = 0

    # --- the loop -------------------------------------------------------------------------
    def start(self) -> None:
        log.info("broker: requests %s, announcements %s", self.client.endpoint, self.sub.endpoint)
        self._send_hello()

    def pump(self, timeout: float = 0.0) -> None:
        """Handle what arrived (waiting up to ``timeout`` s for it), then send what is due."""
        now = time.monotonic()
        if self.reconnect_at is not None:
            if now < self.reconnect_at:
                time.sleep(max(0.0, min(timeout, self.reconnect_at - now)))
                return
            self._reconnect()
        for reply in self.client.poll(timeout):
            self.last_reply = time.monotonic()
            self._handle(reply)
        info = self.sub.latest(0)
        if info is not None:
            self._note_model(info, "announcement")
        now = time.monotonic()
        if self._silent(now):
            return
        if self.welcomed:
            if now >= self.next_heartbeat:
                self._send_heartbeat(now)
            self._send_batches(now)

    def heartbeat_now(self) -> None:
        """Send a heartbeat at once (a state change the status table should show)."""
        if self.welcomed and self.reconnect_at is None:
            self._send_heartbeat(time.monotonic())

    def enqueue(self, batch_id: str) -> None:
        """A new batch is in the outbox: send it when a slot is free."""
        self.queue.append(batch_id)

    def request_model(self) -> bool:
        """Ask for the current model (unless a request is already out); its file comes from ``take_model``."""
        if not self.welcomed or self._waiting_for("model") or time.monotonic() < self.hold_model_until:
            return False
        rid = self.client.send(P.GetModel())
        self.requests[rid] = ("model", None)
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
        while self._waiting_for("heartbeat") and time.monotonic() < deadline:
            self.pump(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.idle()

    def close(self) -> None:
        self.client.close()
        self.sub.close()

    # --- requests -------------------------------------------------------------------------
    def _waiting_for(self, kind: str) -> bool:
        return any(k == kind for k, _ in self.requests.values())

    def _send_hello(self) -> None:
        rid = self.client.send(self.hello)
        self.requests[rid] = ("hello", None)
        self.welcomed = False

    def _send_heartbeat(self, now: float) -> None:
        fields = {**self.describe(), "outbox": len(self.outbox)}
        rid = self.client.send(P.Heartbeat(worker_id=self.hello.worker_id, **fields))
        self.requests[rid] = ("heartbeat", None)
        self.next_heartbeat = now + self.heartbeat_interval

    def _send_batches(self, now: float) -> None:
        while self.queue and len(self.sending) < MAX_IN_FLIGHT and now >= self.hold_batches_until:
            batch_id = self.queue.popleft()
            if batch_id in self.sending:
                continue
            batch = self.outbox.get(batch_id)
            if batch is None:  # acked meanwhile, or found corrupt (moved aside and logged)
                continue
            message = P.SubmitBatch(batch_id=batch.batch_id, worker_id=batch.worker_id, games=batch.games,
                                    positions=batch.positions, generations=list(batch.generations))
            rid = self.client.send(message, [batch.blob])
            self.requests[rid] = ("batch", batch_id)
            self.sending.add(batch_id)

    # --- replies --------------------------------------------------------------------------
    def _handle(self, reply: Reply) -> None:
        kind, batch_id = self.requests.pop(reply.rid, (None, None))
        if kind is None:
            return  # the answer to a request made before a reconnect
        msg = reply.message
        if isinstance(msg, P.Error):
            self._on_error(kind, batch_id, msg)
        elif kind == "hello" and isinstance(msg, P.Welcome):
            self._on_welcome(msg)
        elif kind == "heartbeat" and isinstance(msg, P.HeartbeatAck):
            if msg.model is not None:
                self._note_model(msg.model, "heartbeat")
        elif kind == "model" and isinstance(msg, P.ModelData) and len(reply.blobs) == 1:
            self.fetch_backoff.reset()
            self._model = (msg.model, reply.blobs[0])
            self._note_model(msg.model, "fetch")
        elif kind == "batch" and isinstance(msg, P.BatchAck):
            self._on_ack(msg)
        else:
            log.error("unexpected %s reply to a %s request; ignored", msg.type, kind)

    def _on_welcome(self, msg: P.Welcome) -> None:
        self.welcomed = True
        self.backoff.reset()
        self.heartbeat_interval = msg.heartbeat_interval
        # every batch not acked is (re)sent: the broker acks a stored batch id again as a duplicate
        self.queue = deque(b for b in self.outbox.pending() if b not in self.sending)
        log.info("connected to broker %s (model %s); %d outbox batch(es) to send", msg.broker_id,
                 P.generation_id(msg.model.generation) if msg.model else "none yet", len(self.queue))
        if msg.model is not None:
            self._note_model(msg.model, "welcome")
        self.next_heartbeat = 0.0

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
        if code == P.ErrorCode.UNKNOWN_WORKER:
            log.warning("the broker does not know this worker (restarted?): saying hello again")
            if batch_id is not None:
                self.queue.appendleft(batch_id)
            if not self._waiting_for("hello"):
                self._send_hello()
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
        elif kind == "hello":
            log.error("broker refused our hello (%s: %s)", code.value, err.message)
            self._lose("hello refused")
        else:
            log.warning("broker answered a %s with %s: %s", kind, code.value, err.message)

    def _note_model(self, info: P.ModelInfo, source: str) -> None:
        if self.newest is None or info.generation > self.newest.generation:
            log.debug("broker's current model: %s (from %s)", P.generation_id(info.generation), source)
            self.newest = info
            self.hold_model_until = 0.0  # news: fetch it now, whatever the last GetModel answered
            self.fetch_backoff.reset()

    # --- silence and reconnects -----------------------------------------------------------
    def _silent(self, now: float) -> bool:
        """True (and a reconnect scheduled) when the broker has stopped answering.

        Gone: a request waited past the timeout and nothing at all came back meanwhile. A request
        past the timeout while other replies arrive is lost, not the broker: it is forgotten.
        """
        if not self.client.overdue():
            return False
        timeout = self.client.timeout
        if now - self.last_reply > timeout:
            self._lose(f"no reply within {timeout:g} s")
            return True
        for rid in [rid for rid, sent in self.client.pending.items() if now - sent > timeout]:
            self._forget(rid, timeout)
        return False

    def _forget(self, rid: int, timeout: float) -> None:
        """Give up on one request the broker (alive) never answered; send again what must arrive."""
        del self.client.pending[rid]
        kind, batch_id = self.requests.pop(rid, (None, None))
        log.warning("no reply to a %s request within %g s while the broker answers others: presumed lost%s",
                    kind or "forgotten", timeout, ", sending it again" if kind in ("batch", "hello") else "")
        if kind == "batch":
            self.sending.discard(batch_id)
            self.queue.appendleft(batch_id)  # a second copy is acked as a duplicate
        elif kind == "hello" and not self._waiting_for("hello"):
            self._send_hello()

    def _lose(self, reason: str) -> None:
        delay = self.backoff.delay()
        self.reconnect_at = time.monotonic() + delay
        self.welcomed = False
        self.requests.clear()
        self.sending.clear()
        log.warning("broker silent (%s): reconnecting in %.1f s", reason, delay)

    def _reconnect(self) -> None:
        self.reconnect_at = None
        self.reconnects += 1
        self.client.connect()
        self.sub.connect()
        log.info("reconnecting to %s (attempt %d)", self.client.endpoint, self.reconnects)
        self._send_hello()
