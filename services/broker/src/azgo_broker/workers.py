"""The worker registry: who said hello, what they last reported, and who went silent.

A worker exists from its ``Hello`` on (since this broker started: the table is not
persisted; a worker told ``UNKNOWN_WORKER`` simply says hello again). A worker that says
hello (again) is Syncing: it has no model yet as far as the broker knows, until its first
heartbeat reports its state (Active, Syncing, Error). From then on its state is what it last
reported, except that a worker silent for more than ``liveness_seconds`` is Offline (the
Paranoid Pirate verdict); any message from it refreshes its liveness and shows its last
reported state again. Workers offline for ``FORGET_AFTER`` seconds are dropped, and the table
holds at most ``MAX_WORKERS``: a hello from a new id beyond that evicts the worker seen least
recently (an Offline one first, as those are the least recent), so hellos from any number of
made-up ids cannot grow the broker's memory; nor can one entry (its text is cut to
``MAX_FIELD``/``MAX_ERROR`` characters, it remembers ``MAX_SYNCED`` generations). An evicted
worker that is in fact alive is told ``UNKNOWN_WORKER`` on its next heartbeat and says hello again.
A worker is bound to the connection (ZeroMQ routing id) that said hello: only that connection
may submit batches under its id (``handlers.handle_submit``).

Times: ``last_seen`` is ``time.monotonic()``; nothing here reads a clock itself.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from azgo_core.protocol import Heartbeat, Hello, WorkerState

FORGET_AFTER = 3600.0  # seconds offline before a worker leaves the table
MAX_WORKERS = 4096  # workers (self-play, learner, tools) the table holds at most
MAX_FIELD = 256  # characters kept of a worker's host, gpu and code version (the protocol allows 4096)
MAX_ERROR = 1024  # characters kept of a worker's error report
MAX_SYNCED = 64  # generations remembered per worker for the sync-time metric (the newest)
PURGE_FRACTION = 0.05  # purge scans at most every this fraction of the liveness window


@dataclass
class Worker:
    """One worker's identity and latest report (fields as in ``Hello`` and ``Heartbeat``)."""

    worker_id: str
    role: str
    host: str = ""
    gpu: str = ""
    code_version: str = ""
    pid: int = 0
    parallel_games: int = 0
    state: WorkerState = WorkerState.SYNCING
    """What the status table shows: ``reported``, or Offline while silent."""
    reported: WorkerState = WorkerState.SYNCING
    """The state of the worker's last heartbeat (Syncing until its first)."""
    generation: int = -1
    games_total: int = 0
    positions_total: int = 0
    games_per_s: float = 0.0
    positions_per_s: float = 0.0
    nn_evals_per_s: float = 0.0
    outbox: int = 0
    error: str = ""
    first_seen: float = 0.0
    last_seen: float = 0.0
    joined: float = 0.0
    """Unix time of the worker's first hello to this broker."""
    synced: set[int] = field(default_factory=set)
    """Generations this worker has reported playing with."""
    peer: bytes = b""
    """The ZeroMQ routing id of the connection that said hello: only it may submit batches as this worker."""

    def row(self, now: float) -> dict:
        """The worker as a /status row."""
        return {
            "worker_id": self.worker_id, "host": self.host, "gpu": self.gpu, "role": self.role,
            "parallel_games": self.parallel_games,
            "state": self.state.value, "generation": self.generation, "games_total": self.games_total,
            "positions_total": self.positions_total, "games_per_s": self.games_per_s,
            "positions_per_s": self.positions_per_s, "nn_evals_per_s": self.nn_evals_per_s,
            "outbox": self.outbox, "error": self.error, "last_seen_s": round(max(0.0, now - self.last_seen), 3),
        }


class WorkerRegistry:
    """Workers by id, with liveness; ``workers`` is in order of ``last_seen`` (least recent first)."""

    def __init__(self, liveness_seconds: float, max_workers: int = MAX_WORKERS):
        self.liveness_seconds = liveness_seconds
        self.max_workers = max_workers
        self.workers: OrderedDict[str, Worker] = OrderedDict()
        self._next_purge = float("-inf")

    def get(self, worker_id: str) -> Worker | None:
        return self.workers.get(worker_id)

    def hello(self, msg: Hello, now: float, wall: float, peer: bytes = b"") -> tuple[Worker, Worker | None]:
        """Register (or re-register) a worker: Syncing until its first heartbeat, its old figures forgotten,
        bound to the connection ``peer`` that said hello (a later hello moves it).

        Returns (the worker, the worker evicted to make room or None). ``now`` is monotonic time, ``wall`` unix time.
        """
        old = self.workers.pop(msg.worker_id, None)
        evicted = None
        if old is None and len(self.workers) >= self.max_workers:
            _, evicted = self.workers.popitem(last=False)
        worker = Worker(worker_id=msg.worker_id, role=msg.role, host=msg.host[:MAX_FIELD], gpu=msg.gpu[:MAX_FIELD],
                        code_version=msg.code_version[:MAX_FIELD], pid=msg.pid,
                        parallel_games=msg.parallel_games, first_seen=now, last_seen=now,
                        joined=old.joined if old else wall, synced=old.synced if old else set(), peer=peer)
        self.workers[msg.worker_id] = worker
        return worker, evicted

    def touch(self, worker_id: str, now: float) -> Worker | None:
        """Any message from a known worker proves it alive; an Offline worker shows its last reported state again."""
        worker = self.workers.get(worker_id)
        if worker is not None:
            worker.last_seen = now
            worker.state = worker.reported
            self.workers.move_to_end(worker_id)
        return worker

    def heartbeat(self, msg: Heartbeat, now: float) -> tuple[Worker | None, bool]:
        """Record a heartbeat; returns (worker or None when unknown, whether it reports a generation for the first time)."""
        worker = self.touch(msg.worker_id, now)
        if worker is None:
            return None, False
        worker.state = worker.reported = WorkerState(msg.state)
        worker.generation = msg.generation
        worker.games_total, worker.positions_total = msg.games_total, msg.positions_total
        worker.games_per_s, worker.positions_per_s = msg.games_per_s, msg.positions_per_s
        worker.nn_evals_per_s, worker.outbox, worker.error = msg.nn_evals_per_s, msg.outbox, msg.error[:MAX_ERROR]
        first = msg.generation >= 0 and msg.generation not in worker.synced
        if first:
            worker.synced.add(msg.generation)
            if len(worker.synced) > MAX_SYNCED:  # made-up generations must not grow it: forget the oldest
                worker.synced.discard(min(worker.synced))
        return worker, first

    def purge(self, now: float) -> list[Worker]:
        """Mark workers silent past the liveness window Offline (returned, by id); forget long-gone ones.

        Looks only at the silent ones (the least recent, first in the table), at most every
        ``PURGE_FRACTION`` of the liveness window: the broker calls this between every round.
        """
        if now < self._next_purge:
            return []
        self._next_purge = now + PURGE_FRACTION * self.liveness_seconds
        gone, forgotten = [], []
        for worker_id, worker in self.workers.items():
            silent = now - worker.last_seen
            if silent <= self.liveness_seconds:
                break  # every later worker was seen more recently
            if worker.state != WorkerState.OFFLINE:
                worker.state = WorkerState.OFFLINE
                gone.append(worker)
            elif silent > FORGET_AFTER:
                forgotten.append(worker_id)
        for worker_id in forgotten:
            del self.workers[worker_id]
        return sorted(gone, key=lambda w: w.worker_id)

    def selfplay(self) -> list[Worker]:
        """Self-play workers, sorted by id."""
        return sorted((w for w in self.workers.values() if w.role == "selfplay"), key=lambda w: w.worker_id)

    def by_state(self) -> dict[str, int]:
        """Self-play workers per state; every state present."""
        counts = {s.value: 0 for s in WorkerState}
        for worker in self.selfplay():
            counts[worker.state.value] += 1
        return counts
