"""Per-second rates of a worker's cumulative counters over a sliding time window.

A worker reports games/s, positions/s and NN evaluations/s in its heartbeats. Rates over
the whole run would hide a slow-down (a model swap, a thermal throttle), instantaneous ones
jump with every finished game; a window of ~20 s is what a status table wants.

``RateWindow.add(now, games=..., positions=..., nn_evals=...)`` takes samples of the running
totals (monotonic counters) with the time they were read; ``rates()`` is
(newest - baseline) / (t_newest - t_baseline), where the baseline is the last sample at or
before ``now - window`` (or the oldest one while the window is still filling).
"""

from __future__ import annotations

from collections import deque

DEFAULT_WINDOW_S = 20.0


class RateWindow:
    """Rates of named counters over the last ``window`` seconds."""

    def __init__(self, names: tuple[str, ...] = ("games", "positions", "nn_evals"), window: float = DEFAULT_WINDOW_S):
        if window <= 0:
            raise ValueError(f"window must be > 0 seconds, got {window}")
        self.names = names
        self.window = window
        self._samples: deque[tuple[float, tuple[float, ...]]] = deque()

    def add(self, now: float, **counters: float) -> None:
        """Record the totals read at time ``now`` (seconds, monotonic); every name is required."""
        missing = set(self.names) - counters.keys()
        if missing:
            raise ValueError(f"missing counters {sorted(missing)}")
        if self._samples and now < self._samples[-1][0]:
            raise ValueError(f"time went backwards: {now} after {self._samples[-1][0]}")
        self._samples.append((now, tuple(float(counters[n]) for n in self.names)))
        # keep exactly one sample at or before the window start as the baseline
        while len(self._samples) >= 2 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()

    def rates(self) -> dict[str, float]:
        """Per-second rates (0.0 until two samples span some time; never negative)."""
        if len(self._samples) < 2:
            return {n: 0.0 for n in self.names}
        (t0, first), (t1, last) = self._samples[0], self._samples[-1]
        dt = t1 - t0
        if dt <= 0:
            return {n: 0.0 for n in self.names}
        return {n: max(0.0, (b - a) / dt) for n, a, b in zip(self.names, first, last)}
