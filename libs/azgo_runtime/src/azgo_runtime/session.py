"""One process's session with the broker: the client half of the ZeroMQ guide's Paranoid Pirate.

Every service talks to the broker the same way, and this class is that way, written once:

    hello sent ──Welcome──► welcomed: a heartbeat every ``heartbeat_interval`` seconds
        ▲                     │  Error UNKNOWN_WORKER (the broker restarted): hello again
        │                     │  silence: a request waited ``request_timeout`` seconds and
        │                     ▼  no reply of any kind came back meanwhile
        └── reconnect: fresh DEALER (and SUB) sockets ◄── lost: wait a ``Backoff`` delay

Any reply proves the broker alive. The broker is one thread, and a slow round (a first
compile, a slow fsync, loading a published model) stalls every client's replies at once for
seconds; only ``request_timeout`` seconds of total silence while a request is outstanding means
the broker is gone. A request unanswered for that long while other replies do arrive was lost
on the way (the broker drops a reply to a peer that is not reading): it is forgotten, and the
owner hears of it (``on_forgotten``) to send again what must arrive.

Two ways to ask, on one socket, with replies matched to requests by rid:

- ``send(kind, message)`` and ``pump(timeout)``: nothing blocks, for loops that must keep
  working while they wait (self-play's search, the evaluator's games). ``pump`` reads what
  arrived, sends the heartbeat that is due, and hands each reply to ``on_reply(kind, tag, reply)``.
- ``call(message)``: waits for its own reply (replies to other requests that arrive meanwhile
  are dispatched as by ``pump``), retries after a back-off while the broker is away (unless
  ``retry=False``), says hello again when the broker has forgotten this process, and raises
  ``RemoteError`` for a refusal.

The hello, the heartbeat and the model news are the session's own; an owner subclasses it and
overrides the ``on_*`` hooks and ``heartbeat`` for the rest. A socket is not thread-safe: one
session per thread.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Sequence

from azgo_core import __version__
from azgo_core import protocol as P

from .client import Backoff, BrokerClient, BrokerUnavailable, RemoteError, Reply, Subscriber
from .curve import client_curve

log = logging.getLogger("azgo.session")


def hello_message(settings, worker_id: str, role: str, **fields) -> P.Hello:
    """The hello this process sends: its id and role, host, pid, code version and board size
    (``fields``: what a role adds, e.g. self-play's gpu and parallel games)."""
    return P.Hello(worker_id=worker_id, role=role, host=socket.gethostname()[:P.MAX_TEXT], pid=os.getpid(),
                   code_version=__version__, board_size=settings.board.size, **fields)


class BrokerSession:
    """Hello, heartbeats, silence, reconnects and request matching for one client of the broker.

    ``keys`` names this process's CURVE key pair (``selfplay``, ``learner``, ``evaluator``);
    ``subscribe`` adds the SUB socket for model announcements; ``should_stop()`` ends the
    retries of ``call``. What the owner reads: ``welcomed``, ``newest`` (the newest ModelInfo
    the broker mentioned, by Welcome, heartbeat ack, announcement or fetch), ``reconnects``.
    """

    def __init__(self, settings, hello: P.Hello, *, keys: str, subscribe: bool = True,
                 should_stop: Callable[[], bool] = lambda: False, curve: dict | None = None):
        d = settings.distributed
        curve = curve or client_curve(settings, keys)
        self.hello = hello
        self.should_stop = should_stop
        self.client = BrokerClient(settings.router_endpoint(), timeout=d.request_timeout, curve=curve)
        self.sub = Subscriber(settings.pub_endpoint(), curve=curve) if subscribe else None
        self.backoff = Backoff(d.reconnect_min, d.reconnect_max)
        self.heartbeat_interval = d.heartbeat_interval
        self.requests: dict[int, tuple[str, str | None]] = {}  # rid -> (kind, tag) of a pumped request
        self.welcomed = False
        self.last_reply = 0.0  # monotonic time of the last reply of any kind
        self.reconnect_at: float | None = None
        self.next_heartbeat = 0.0
        self.newest: P.ModelInfo | None = None
        self.reconnects = 0

    # --- hooks for the owner ---------------------------------------------------------------
    def heartbeat(self) -> P.Heartbeat:
        """The heartbeat to send now (default: alive, playing no self-play generation)."""
        return P.Heartbeat(worker_id=self.hello.worker_id, generation=-1)

    def on_welcome(self, welcome: P.Welcome) -> None:
        """The broker (again) knows this process."""

    def on_reply(self, kind: str, tag: str | None, reply: Reply) -> None:
        """The reply (an answer or an ``Error``) to a request the owner sent with ``send``."""
        if isinstance(reply.message, P.Error):
            log.warning("broker answered a %s with %s: %s", kind, reply.message.code.value, reply.message.message)

    def on_forgotten(self, kind: str, tag: str | None) -> None:
        """A request the broker, alive, never answered: presumed lost on the way."""

    def on_lost(self) -> None:
        """The broker went silent; every request in flight is void."""

    def on_new_model(self, info: P.ModelInfo, source: str) -> None:
        """``newest`` moved to ``info`` (``source``: welcome, heartbeat, announcement, fetch)."""

    def on_pump(self, now: float) -> None:
        """Called at the end of each ``pump`` while welcomed: send what is due."""

    # --- the non-blocking mode ---------------------------------------------------------------
    def start(self) -> None:
        log.info("broker: requests %s%s", self.client.endpoint,
                 f", announcements {self.sub.endpoint}" if self.sub else "")
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
            self._dispatch(reply)
        if self.sub is not None:
            info = self.sub.latest(0)
            if info is not None:
                self.note_model(info, "announcement")
        now = time.monotonic()
        if self._silent(now) or not self.welcomed:
            return
        if now >= self.next_heartbeat:
            self._send_heartbeat(now)
        self.on_pump(now)

    def send(self, kind: str, message: P.Message, blobs: Sequence[bytes] = (), tag: str | None = None) -> int:
        """Send a request whose reply ``pump`` hands to ``on_reply(kind, tag, reply)``. Returns its rid."""
        rid = self.client.send(message, blobs)
        self.requests[rid] = (kind, tag)
        return rid

    def waiting_for(self, kind: str) -> bool:
        """A pumped request of ``kind`` awaits its reply."""
        return any(k == kind for k, _ in self.requests.values())

    def heartbeat_now(self) -> None:
        """Send a heartbeat at once (a state change the status table should show)."""
        if self.welcomed and self.reconnect_at is None:
            self._send_heartbeat(time.monotonic())

    def note_model(self, info: P.ModelInfo, source: str) -> None:
        """The broker mentioned ``info``; ``newest`` follows when it is newer."""
        if self.newest is None or info.generation > self.newest.generation:
            log.debug("broker's current model: %s (from %s)", P.generation_id(info.generation), source)
            self.newest = info
            self.on_new_model(info, source)

    # --- the blocking mode ------------------------------------------------------------------
    def call(self, message: P.Message, blobs: Sequence[bytes] = (), *, timeout: float | None = None,
             retry: bool = True) -> Reply:
        """Send and wait for the reply (see the module docstring).

        Raises ``RemoteError`` for a refusal and, with ``retry=False`` or once ``should_stop()``,
        ``BrokerUnavailable`` after ``timeout`` (default ``request_timeout``) seconds of silence.
        """
        while True:
            if self.reconnect_at is not None:
                if not retry:  # a caller that will try again later is not kept waiting for the back-off
                    raise BrokerUnavailable(f"the broker at {self.client.endpoint} is silent; reconnecting in "
                                            f"{self.reconnect_at - time.monotonic():.1f} s")
                self._wait_to_reconnect()
            try:
                reply = self._request(message, blobs, timeout)
            except BrokerUnavailable:
                if not retry or self.should_stop():
                    raise
                continue
            error = reply.message if isinstance(reply.message, P.Error) else None
            if error is None:
                return reply
            if error.code == P.ErrorCode.UNKNOWN_WORKER and not isinstance(message, P.Hello):
                log.info("the broker does not know this worker (%s; restarted?): saying hello again", self.hello.worker_id)
                self.welcome(retry=retry)
                continue
            raise RemoteError(error)

    def welcome(self, *, retry: bool = True) -> P.Welcome:
        """Say hello and wait for the Welcome (retried while the broker is away, unless ``retry=False``)."""
        reply = self.call(self.hello, retry=retry)
        if not isinstance(reply.message, P.Welcome):
            raise RemoteError(P.Error(code=P.ErrorCode.BAD_MESSAGE, message=f"a {reply.message.type} answered our hello"))
        self._on_welcome(reply.message)
        return reply.message

    def close(self) -> None:
        self.client.close()
        if self.sub is not None:
            self.sub.close()

    def _request(self, message: P.Message, blobs: Sequence[bytes], timeout: float | None) -> Reply:
        timeout = self.client.timeout if timeout is None else timeout
        rid = self.client.send(message, blobs)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            for reply in self.client.poll(left):
                self.last_reply = time.monotonic()
                if reply.rid == rid:
                    return reply
                self._dispatch(reply)
        self._lose(f"no reply within {timeout:g} s")
        raise BrokerUnavailable(f"no reply from the broker at {self.client.endpoint} within {timeout:g} s")

    def _wait_to_reconnect(self) -> None:
        while (left := self.reconnect_at - time.monotonic()) > 0 and not self.should_stop():
            time.sleep(min(0.1, left))
        self._reconnect()

    # --- the session's own requests and replies ---------------------------------------------
    def _send_hello(self) -> None:
        self.send("hello", self.hello)
        self.welcomed = False

    def _send_heartbeat(self, now: float) -> None:
        self.send("heartbeat", self.heartbeat())
        self.next_heartbeat = now + self.heartbeat_interval

    def _dispatch(self, reply: Reply) -> None:
        kind, tag = self.requests.pop(reply.rid, (None, None))
        if kind is None:
            return  # the answer to a request made before a reconnect, or forgotten
        msg = reply.message
        if isinstance(msg, P.Error) and msg.code == P.ErrorCode.UNKNOWN_WORKER:
            log.warning("the broker does not know this worker (%s; restarted?): saying hello again", self.hello.worker_id)
            if not self.waiting_for("hello"):
                self._send_hello()
            if kind not in ("hello", "heartbeat"):
                self.on_reply(kind, tag, reply)  # e.g. a batch goes back in the queue
        elif kind == "hello" and isinstance(msg, P.Welcome):
            self._on_welcome(msg)
        elif kind == "hello" and isinstance(msg, P.Error):
            log.error("broker refused our hello (%s: %s)", msg.code.value, msg.message)
            self._lose("hello refused")
        elif kind == "heartbeat" and isinstance(msg, P.HeartbeatAck):
            if msg.model is not None:
                self.note_model(msg.model, "heartbeat")
        elif kind in ("hello", "heartbeat"):
            log.warning("unexpected %s reply to a %s; ignored", msg.type, kind)
        else:
            self.on_reply(kind, tag, reply)

    def _on_welcome(self, msg: P.Welcome) -> None:
        was = self.welcomed
        self.welcomed = True
        self.backoff.reset()
        self.heartbeat_interval = msg.heartbeat_interval
        self.next_heartbeat = 0.0
        if not was:
            log.info("connected to broker %s (model %s)", msg.broker_id,
                     P.generation_id(msg.model.generation) if msg.model else "none yet")
        self.on_welcome(msg)
        if msg.model is not None:
            self.note_model(msg.model, "welcome")

    # --- silence and reconnects -------------------------------------------------------------
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
        """Give up on one request the broker (alive) never answered; a hello is sent again."""
        del self.client.pending[rid]
        kind, tag = self.requests.pop(rid, (None, None))
        log.warning("no reply to a %s request within %g s while the broker answers others: presumed lost",
                    kind or "forgotten", timeout)
        if kind == "hello":
            if not self.waiting_for("hello"):
                self._send_hello()
        elif kind is not None:
            self.on_forgotten(kind, tag)

    def _lose(self, reason: str) -> None:
        delay = self.backoff.delay()
        self.reconnect_at = time.monotonic() + delay
        self.welcomed = False
        self.requests.clear()
        self.on_lost()
        log.warning("broker silent (%s): reconnecting in %.1f s", reason, delay)

    def _reconnect(self) -> None:
        self.reconnect_at = None
        self.reconnects += 1
        self.client.connect()
        if self.sub is not None:
            self.sub.connect()
        log.info("reconnecting to %s (attempt %d)", self.client.endpoint, self.reconnects)
        self._send_hello()
