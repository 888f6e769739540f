"""Run ``fn(chunk)`` for chunks 0..n-1 on the calling thread and a few helper threads.

The search's compiled kernels release the GIL, so helpers run them on other cores. The
caller never waits for a helper to wake up: it takes chunks itself from the same counter,
and at the end waits only for the chunks helpers have already taken. On a host whose cores
other processes share, a helper the scheduler keeps off a core costs one chunk's delay, not
a step (numba's ``prange`` launches wait for every thread; here a 2-thread step ran ~10x
slower than one thread while the two cores were busy).
"""

from __future__ import annotations

import itertools
import threading
from typing import Callable


class _Job:
    """One ``map``: a chunk counter shared by all threads, and what is left to finish."""

    def __init__(self, fn: Callable[[int], None], n: int):
        self.fn, self.n = fn, n
        self.next = itertools.count()  # next() is atomic under the GIL
        self.left = n
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.error: BaseException | None = None

    def work(self) -> None:
        """Take and run chunks until none is left."""
        while (c := next(self.next)) < self.n:
            try:
                self.fn(c)
            except BaseException as e:  # noqa: BLE001  (handed to the caller, raised there)
                self.error = self.error or e
            with self.lock:
                self.left -= 1
                if self.left == 0:
                    self.done.set()


class ChunkPool:
    """``threads`` - 1 daemon helpers; ``map`` calls from several threads run one at a time."""

    def __init__(self, threads: int):
        self.threads = threads
        self._job: _Job | None = None
        self._posted = threading.Condition()
        self._one_at_a_time = threading.Lock()
        for i in range(threads - 1):
            threading.Thread(target=self._helper, name=f"azgo-search-{i + 1}", daemon=True).start()

    def map(self, fn: Callable[[int], None], n: int) -> None:
        """``fn(c)`` for every c in range(n), each exactly once; re-raises a chunk's error."""
        if n <= 0:
            return
        job = _Job(fn, n)
        with self._one_at_a_time:
            if n > 1 and self.threads > 1:
                with self._posted:
                    self._job = job
                    self._posted.notify_all()
            job.work()
            job.done.wait()
        if job.error is not None:
            raise job.error

    def _helper(self) -> None:
        seen = None
        while True:
            with self._posted:
                while self._job is seen:
                    self._posted.wait()
                job = seen = self._job
            if job is not None:
                job.work()


_pools: dict[int, ChunkPool] = {}
_pools_lock = threading.Lock()


def pool(threads: int) -> ChunkPool:
    """The process's pool of ``threads`` threads (helpers are made once and live on)."""
    with _pools_lock:
        if threads not in _pools:
            _pools[threads] = ChunkPool(threads)
        return _pools[threads]
