"""A DEALER connection to the broker, with the ZeroMQ guide's reliability patterns.

Lazy Pirate for one blocking request (``request``: send, wait up to a timeout, on silence throw
the socket away and connect a fresh one; the tools and tests use it) and an asynchronous mode
(``send`` + ``poll``) on which the services' ``session.BrokerSession`` builds hello, heartbeats,
silence detection and reconnects. Reconnect delays follow ``Backoff`` (1 s doubling to 32 s,
with jitter).

A socket is not thread-safe: one client per thread.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import zmq

from azgo_core import protocol as P

log = logging.getLogger("azgo.client")


class BrokerUnavailable(ConnectionError):
    """No reply within the timeout: the broker is down, restarting or unreachable."""


class RemoteError(RuntimeError):
    """The broker answered with an ``Error`` reply."""

    def __init__(self, error: P.Error):
        super().__init__(f"broker refused: {error.code.value}: {error.message}")
        self.code, self.message = error.code, error.message


@dataclass
class Backoff:
    """Reconnect delays: ``first`` doubling up to ``cap``, each with +-``jitter`` share of noise."""

    first: float = 1.0
    cap: float = 32.0
    jitter: float = 0.2
    _next: float = field(default=0.0, init=False)

    def delay(self) -> float:
        """The next delay (and advance the sequence)."""
        base = self._next or self.first
        self._next = min(self.cap, base * 2)
        return base * (1 + random.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        self._next = 0.0


@dataclass
class Reply:
    message: P.Message
    blobs: list[bytes]
    rid: int


def apply_curve(sock: zmq.Socket, curve: dict | None) -> None:
    """Client side of CURVE (``curve``: publickey, secretkey, serverkey as z85 bytes), or nothing."""
    if curve:
        sock.curve_publickey = curve["publickey"]
        sock.curve_secretkey = curve["secretkey"]
        sock.curve_serverkey = curve["serverkey"]


class BrokerClient:
    """Requests to the broker's ROUTER over one DEALER socket (recreated on every reconnect)."""

    def __init__(self, endpoint: str, *, timeout: float = 10.0, context: zmq.Context | None = None,
                 curve: dict | None = None, max_blob_bytes: int = 256 << 20):
        self.endpoint = endpoint
        self.timeout = timeout
        self.curve = curve
        self.context = context or zmq.Context.instance()
        self.max_blob_bytes = max_blob_bytes
        self._rids = itertools.count(1)
        self.pending: dict[int, float] = {}  # rid -> time sent (asynchronous mode)
        self.sock: zmq.Socket | None = None
        self.connects = 0
        self.bytes_out = 0
        self.bytes_in = 0
        self.connect()

    # --- connection -----------------------------------------------------------------------
    def connect(self) -> None:
        """(Re)create the socket; replies still owed to the old one are forgotten."""
        self.close()
        sock = self.context.socket(zmq.DEALER)
        sock.linger = 0
        sock.maxmsgsize = self.max_blob_bytes
        apply_curve(sock, self.curve)
        sock.connect(self.endpoint)
        self.sock = sock
        self.pending.clear()
        self.connects += 1

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- asynchronous mode ----------------------------------------------------------------
    def send(self, message: P.Message, blobs: Sequence[bytes] = ()) -> int:
        """Queue a request; its reply comes back through ``poll``. Returns its rid."""
        rid = next(self._rids)
        header = P.encode(message.model_copy(update={"rid": rid}))
        frames = [header, *blobs]
        self.sock.send_multipart(frames, copy=False)
        self.bytes_out += sum(len(f) for f in frames)
        self.pending[rid] = time.monotonic()
        return rid

    def poll(self, timeout: float = 0.0) -> list[Reply]:
        """Replies that arrived within ``timeout`` seconds (all that are ready, at least one if any)."""
        out: list[Reply] = []
        if not self.sock.poll(int(timeout * 1000), zmq.POLLIN):
            return out
        while self.sock.poll(0, zmq.POLLIN):
            frames = self.sock.recv_multipart()
            self.bytes_in += sum(len(f) for f in frames)
            try:
                message = P.decode(frames[0])
            except P.ProtocolError as e:  # a broken broker reply: log it, never crash the caller
                log.error("unreadable reply from the broker: %s", e)
                continue
            self.pending.pop(message.rid, None)
            out.append(Reply(message, frames[1:], message.rid))
        return out

    def overdue(self) -> bool:
        """True when a request has waited longer than the timeout (the broker is presumed gone)."""
        now = time.monotonic()
        return any(now - t > self.timeout for t in self.pending.values())

    # --- blocking mode (Lazy Pirate) ------------------------------------------------------
    def request(self, message: P.Message, blobs: Sequence[bytes] = (), timeout: float | None = None) -> Reply:
        """Send and wait for the matching reply.

        Raises ``RemoteError`` for an error reply and ``BrokerUnavailable`` after ``timeout``
        seconds of silence (the socket is then replaced, so the next call starts clean).
        """
        timeout = self.timeout if timeout is None else timeout
        rid = self.send(message, blobs)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            for reply in self.poll(left):
                if reply.rid != rid:
                    continue  # a late answer to an abandoned request
                if isinstance(reply.message, P.Error):
                    raise RemoteError(reply.message)
                return reply
        self.connect()
        raise BrokerUnavailable(f"no reply from the broker at {self.endpoint} within {timeout:g} s")


class Subscriber:
    """The broker's model announcements (PUB/SUB). Late joiners miss old ones: ask ``GetModel``."""

    def __init__(self, endpoint: str, *, context: zmq.Context | None = None, curve: dict | None = None):
        self.endpoint = endpoint
        self.context = context or zmq.Context.instance()
        self.curve = curve
        self.sock: zmq.Socket | None = None
        self.connect()

    def connect(self) -> None:
        self.close()
        sock = self.context.socket(zmq.SUB)
        sock.linger = 0
        sock.maxmsgsize = P.MAX_HEADER_BYTES + len(P.ANNOUNCE_TOPIC) + 16
        apply_curve(sock, self.curve)
        sock.setsockopt(zmq.SUBSCRIBE, P.ANNOUNCE_TOPIC)
        sock.connect(self.endpoint)
        self.sock = sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None

    def latest(self, timeout: float = 0.0) -> P.ModelInfo | None:
        """The newest announcement received within ``timeout`` seconds, or None."""
        newest = None
        if not self.sock.poll(int(timeout * 1000), zmq.POLLIN):
            return None
        while self.sock.poll(0, zmq.POLLIN):
            frames = self.sock.recv_multipart()
            if len(frames) != 2 or frames[0] != P.ANNOUNCE_TOPIC:
                continue
            try:
                message = P.decode(frames[1])
            except P.ProtocolError as e:
                log.error("unreadable announcement: %s", e)
                continue
            if isinstance(message, P.Announce) and (newest is None or message.model.generation > newest.generation):
                newest = message.model
        return newest
