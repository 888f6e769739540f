"""The training window, filled from the broker's game store.

The broker numbers stored batches with a sequence number ``seq`` (0, 1, 2...). The learner
keeps a cursor, the ``seq`` of the last batch it read, and asks for the batches after it
(``GetSamples(after=cursor, window=...)``), page by page while the reply says ``more``.
Each batch's blob decodes into ``GameRecord`` s that go into a ``PositionSampler``.

After a restart the cursor starts at -1, so the window refills from the store; the
checkpoint's cursor (``counted_through``) says which of those batches were counted as new
positions before (for the sample-ratio governor) and must not be counted twice.

A batch that does not decode is logged with its ``seq`` and skipped: one bad blob never
stops training.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from azgo_core import protocol as P
from azgo_core.health import HealthWindow
from azgo_core.records import RecordError, decode_batch
from azgo_core.train import PositionSampler
from azgo_runtime.client import Reply

log = logging.getLogger("azgo.learner.window")


def moves_window(window_positions: int, full_search_prob: float) -> int:
    """How many stored moves hold ``window_positions`` policy targets.

    The broker counts every move as a position; only full-search moves are policy targets,
    about ``full_search_prob`` of them, so the learner asks for proportionally more moves.
    """
    return math.ceil(window_positions / max(full_search_prob, 0.05))


class WindowFeed:
    """The sampler of the training window and the cursor into the broker's store."""

    def __init__(self, sampler: PositionSampler, request_window: int, counted_through: int = -1,
                 health: HealthWindow | None = None):
        self.sampler = sampler
        self.health = health
        """Training-health figures of the games read (refilled with the window after a restart)."""
        self.request_window = request_window
        """``window`` of each ``GetSamples``: stored moves (positions) to ask for."""
        self.cursor = -1
        """seq of the last stored batch read (-1: none)."""
        self.counted_through = counted_through
        """Batches up to this seq were counted as new positions before a restart."""
        self.skipped = 0
        """Batches that could not be decoded."""

    @property
    def counted_cursor(self) -> int:
        """seq through which stored batches have been counted: the checkpoint's cursor."""
        return max(self.cursor, self.counted_through)

    def pull(self, fetch: Callable[[P.GetSamples], Reply]) -> int:
        """Read every batch after the cursor (``fetch`` sends one request); returns new positions counted."""
        new = 0
        while True:
            reply = fetch(P.GetSamples(after=self.cursor, window=self.request_window))
            samples = reply.message
            if samples.last_seq < self.counted_cursor:
                self._store_went_back(samples.last_seq)
                continue
            if len(reply.blobs) != len(samples.batches):
                log.error("samples reply has %d blobs for %d batches: reading the first %d",
                          len(reply.blobs), len(samples.batches), min(len(reply.blobs), len(samples.batches)))
            for batch, blob in zip(samples.batches, reply.blobs):
                new += self._add(batch, blob)
            if not samples.more or not samples.batches:
                return new

    def _add(self, batch: P.StoredBatch, blob: bytes) -> int:
        """Decode one stored batch into the sampler; returns its new policy-target positions."""
        self.cursor = max(self.cursor, batch.seq)
        before = self.sampler.total_added
        try:
            records = decode_batch(blob)
            self.sampler.add(records)
        except (RecordError, TypeError, ValueError) as exc:
            self.skipped += 1
            log.error("stored batch seq %d skipped: %s", batch.seq, exc)
            return 0
        if self.health is not None:
            self.health.add(records)
        added = self.sampler.total_added - before
        return added if batch.seq > self.counted_through else 0

    def _store_went_back(self, last_seq: int) -> None:
        """The broker's store ends before our cursor: it lost its data. Start again from its beginning."""
        log.warning("the broker's game store ends at seq %d, before this learner's cursor %d (its data was lost?): "
                    "reading it from the start", last_seq, self.counted_cursor)
        self.cursor = -1
        self.counted_through = -1
