"""Batch checks beside the poll loop: a pool of threads validates, the loop stores, fsyncs and acks.

A batch's check can be slow: the compiled check is milliseconds, but a batch it refuses goes
through ``validate_batch`` in Python to be named, a replay of every game (seconds for a
hostile batch of thousands). In the loop that would stall every other client's heartbeat and
model fetch. So ``handle_submit`` hands the batch to ``BatchChecker.submit`` and answers
nothing yet; one of the checker's ``broker.validation_threads`` threads runs ``check_batch``
(decoding, and the compiled replay, which releases the GIL; the Python path yields it every
few milliseconds) and posts the verdict, waking the loop through an inproc socket; the loop
(``Broker.finish_checks``) appends the accepted batch to the store in its own thread and acks
it after the round's fsync, as before.

Several threads check several batches at once, but verdicts reach the loop in arrival order:
the store's order and each peer's reply order are those of a single thread, and a slow batch
delays the *acks* of the batches behind it, never a heartbeat, a hello or a model fetch.
The backlog is bounded (``MAX_BACKLOG_BYTES``): beyond it a batch is refused ``STORAGE``
("busy: retry later", which a worker retries after a back-off), so a flood of batches cannot
grow the broker's memory.
"""

from __future__ import annotations

import collections
import itertools
import logging
import queue
import threading
from collections.abc import Callable, Container
from dataclasses import dataclass

import zmq

from azgo_core import protocol as P

from .validate import BatchRejected, BatchRules, check_batch

log = logging.getLogger("azgo.broker.checking")

MAX_BACKLOG_BYTES = 256 << 20  # batch bytes waiting for or under their check, at most
_endpoints = itertools.count()


@dataclass
class CheckJob:
    """One batch to check; ``error`` is the verdict (None: accepted) once ``done``."""

    identity: bytes
    msg: P.SubmitBatch
    blob: bytes
    slot: list | None = None  # the reply's place in its peer's order (Broker.reserve)
    error: BatchRejected | None = None
    checked: bool = False  # set by the checking thread once ``error`` is the verdict


class BatchChecker:
    """``threads`` threads that run ``check`` (``check_batch``) on submitted jobs; ``wake`` (a PULL
    socket for the loop's poller) becomes readable when verdicts are ready, ``done()`` returns
    the checked jobs in submission order."""

    def __init__(self, context: zmq.Context, rules: BatchRules, published: Container[int], threads: int = 1,
                 check: Callable[[P.SubmitBatch, bytes, BatchRules, Container[int]], None] = check_batch):
        if threads < 1:
            raise ValueError(f"a batch checker needs at least one thread, got {threads}")
        self.context, self.rules, self.published, self.check = context, rules, published, check
        self.endpoint = f"inproc://azgo-batch-checker-{next(_endpoints)}"
        self.wake = context.socket(zmq.PULL)
        self.wake.bind(self.endpoint)
        self.jobs: queue.SimpleQueue[CheckJob | None] = queue.SimpleQueue()
        self.pending: collections.deque[CheckJob] = collections.deque()  # submitted, in order (the loop's thread)
        self.backlog_bytes = 0  # changed by the loop's thread only
        self.threads = [threading.Thread(target=self._run, name=f"azgo-batch-checker-{i}", daemon=True)
                        for i in range(threads)]
        for thread in self.threads:
            thread.start()

    def busy(self, size: int) -> bool:
        """Whether a batch of ``size`` bytes would take the backlog past ``MAX_BACKLOG_BYTES``."""
        return self.backlog_bytes > 0 and self.backlog_bytes + size > MAX_BACKLOG_BYTES

    def submit(self, job: CheckJob) -> None:
        self.backlog_bytes += len(job.blob)
        self.pending.append(job)
        self.jobs.put(job)

    def done(self) -> list[CheckJob]:
        """The jobs checked since the last call, in submission order (the loop's thread)."""
        while True:
            try:
                self.wake.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
        out = []
        while self.pending and self.pending[0].checked:  # a later batch checked first waits for those before it
            job = self.pending.popleft()
            self.backlog_bytes -= len(job.blob)
            out.append(job)
        return out

    def stop(self) -> None:
        """Finish the jobs already submitted and stop the threads (their verdicts wait for ``done``)."""
        alive = [t for t in self.threads if t.is_alive()]
        for _ in alive:
            self.jobs.put(None)
        for thread in alive:
            thread.join()

    def close(self) -> None:
        self.stop()
        self.wake.close(linger=0)

    def _run(self) -> None:
        push = self.context.socket(zmq.PUSH)
        push.connect(self.endpoint)
        try:
            while (job := self.jobs.get()) is not None:
                try:
                    self.check(job.msg, job.blob, self.rules, self.published)
                except BatchRejected as e:
                    job.error = e
                except Exception as e:  # a bug in a check: that batch is refused, the broker goes on
                    log.exception("checking batch %s failed", job.msg.batch_id)
                    job.error = BatchRejected(P.ErrorCode.INTERNAL, f"{type(e).__name__}: {e}")
                job.checked = True  # the verdict is written before the flag; the loop reads the flag first
                try:
                    push.send(b"", zmq.NOBLOCK)
                except zmq.Again:  # the loop has wake-ups queued already: it will drain this one too
                    pass
        finally:
            push.close(linger=0)
