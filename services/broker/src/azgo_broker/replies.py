"""Every reply the broker sends, in the order each peer asked.

A batch is checked beside the loop, so its reply comes later than the requests after it; a
peer must still get its replies in request order (a worker matches them by rid, but the
exactly-once test reads them as a stream). ``reserve`` keeps a place for a late reply: the
peer's later replies wait behind it in ``held`` and go out, in order, once it is filled
(``send(..., slot=)``). A peer that has gone away (EHOSTUNREACH, with ROUTER_MANDATORY) or is
not reading (EAGAIN) loses the reply; the loop never blocks on one.
"""

from __future__ import annotations

import collections
import logging

import zmq

from azgo_core import protocol as P

from .metrics import BrokerMetrics
from .ratelog import RateLimitedLog

log = logging.getLogger("azgo.broker")


class Replies:
    """The ROUTER socket's sending side: replies, refusals (counted and logged) and their order per peer."""

    def __init__(self, router: zmq.Socket, metrics: BrokerMetrics, log_limited: RateLimitedLog):
        self.router = router
        self.metrics = metrics
        self.log_limited = log_limited
        self.held: dict[bytes, collections.deque[list]] = {}  # peer -> its replies in request order, from its
        # oldest batch under check on ([message, blobs], message None while the check runs): see ``reserve``

    def refuse(self, identity: bytes, error: P.Error, what: str, log_it: bool = True, slot: list | None = None) -> None:
        """Answer a request with ``error``, count it in azgo_batches_rejected_total{reason=code} and /status
        "rejected", and log it (rate-limited: the first few per code per minute, then a count)."""
        code = P.ErrorCode(error.code).value
        self.metrics.refused(code)
        if log_it:
            self.log_limited.warning(f"refused {code}", "refused %s (peer %s): %s: %s", what, identity.hex()[:16],
                                     code, error.message)
        self.send(identity, error, slot=slot)

    def reserve(self, identity: bytes) -> list:
        """A place for a reply that comes later (a batch under check): the peer's later replies wait behind it,
        so each peer is answered in the order it asked. Filled by ``send(..., slot=)``."""
        slot = [None, ()]
        self.held.setdefault(identity, collections.deque()).append(slot)
        return slot

    def send(self, identity: bytes, message: P.Message, blobs: list[bytes] = (), slot: list | None = None) -> None:
        """Send a reply (into its reserved ``slot``, or behind the peer's replies still waiting for a check); a
        peer that has gone away (EHOSTUNREACH) or is not reading loses it."""
        queue = self.held.get(identity)
        if slot is not None:
            slot[0], slot[1] = message, blobs
        elif queue:
            queue.append([message, blobs])
            return
        if queue is None:
            self._send_now(identity, message, blobs)
            return
        while queue and queue[0][0] is not None:  # send what is no longer waiting, in order
            self._send_now(identity, *queue.popleft())
        if not queue:
            del self.held[identity]

    def _send_now(self, identity: bytes, message: P.Message, blobs: list[bytes] = ()) -> None:
        frames = [identity, P.encode(message), *blobs]
        try:
            self.router.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as e:
            if e.errno == zmq.EHOSTUNREACH:
                self.log_limited.info("reply dropped", "reply %s to %s dropped: the peer is gone", message.type,
                                      identity.hex())
            elif e.errno == zmq.EAGAIN:
                self.log_limited.warning("reply not read", "reply %s to %s dropped: the peer is not reading",
                                         message.type, identity.hex())
            else:
                log.error("reply %s to %s failed: %s", message.type, identity.hex(), e)
            return
        size = sum(len(f) for f in frames)
        self.metrics.sent(size)
