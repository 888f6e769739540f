"""A log that cannot be flooded: the first lines of each kind in full, then counts.

A hostile or broken peer can send the broker thousands of bad requests a second; one warning
line each would fill the disk and bury everything else. ``RateLimitedLog`` writes, per kind
(a key such as ``refused bad_batch``), the first ``first`` lines of every ``interval``-second
window in full and only counts the rest; when the window closes (``flush``, called from the
broker's tick, or the next line after it) one summary line gives the counts it held back::

    refused bad_batch: 1234 more in the last 60 s (not shown)

so the log grows by at most ``first`` lines per kind plus one summary per window, whatever
the rate. Times are ``clock()`` seconds (``time.monotonic`` unless a test passes its own).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

FIRST_PER_KIND = 5  # lines of each kind written in full per window
WINDOW_SECONDS = 60.0


class RateLimitedLog:
    """``logger`` with at most ``first`` lines per kind per ``interval`` seconds, plus one summary line."""

    def __init__(self, logger: logging.Logger, first: int = FIRST_PER_KIND, interval: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.logger, self.first, self.interval, self.clock = logger, first, interval, clock
        self.window_start = clock()
        self.shown: dict[str, int] = {}
        self.held: dict[str, int] = {}
        """Lines not written in this window, by kind; bounded by the number of kinds the caller uses."""

    def log(self, level: int, kind: str, text: str, *args, limit: int | None = None, exc_info=None) -> bool:
        """Write ``text % args`` unless ``kind`` has had its lines this window (then count it); True if written.

        ``limit`` overrides ``first`` for this kind (e.g. more hellos than refusals).
        """
        self.flush()
        shown = self.shown.get(kind, 0)
        if shown >= (self.first if limit is None else limit):
            self.held[kind] = self.held.get(kind, 0) + 1
            return False
        self.shown[kind] = shown + 1
        self.logger.log(level, text, *args, exc_info=exc_info)
        return True

    def warning(self, kind: str, text: str, *args, **kw) -> bool:
        return self.log(logging.WARNING, kind, text, *args, **kw)

    def info(self, kind: str, text: str, *args, **kw) -> bool:
        return self.log(logging.INFO, kind, text, *args, **kw)

    def flush(self, force: bool = False) -> None:
        """At the end of a window (or when ``force``d): one summary line per kind held back, and a new window."""
        now = self.clock()
        if not force and now - self.window_start < self.interval:
            return
        for kind, n in sorted(self.held.items()):
            self.logger.warning("%s: %d more in the last %.0f s (not shown)", kind, n, now - self.window_start)
        self.window_start = now
        self.shown.clear()
        self.held.clear()
