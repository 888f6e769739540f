"""The self-play worker: plays with the broker's current model and ships finished games.

One loop, one thread. Between two ``SelfPlayRunner.step()`` calls (one batched search step for
all ``self_play.parallel_games`` games) the worker pumps its ``BrokerLink`` without waiting:
replies, announcements, heartbeats and batch sends all fit between steps, so the network is
never idle behind a slow ack.

    state      meaning (what the broker's status table shows)
    Syncing    no model yet, or fetching a newer generation (the old one keeps playing meanwhile)
    Active     playing with ``generation``
    Error      the runner or model raised; the text is in every heartbeat until the worker has
               backed off and rebuilt its runner (games in progress are dropped, never sent)

Finished games collect in ``pending``; every ``distributed.batch_size`` of them (or fewer,
once the oldest has waited ``distributed.batch_max_wait`` seconds) become one batch, written
to the outbox (``outbox.py``) before it is sent. A newer generation (from an announcement, a
heartbeat ack, a welcome, or the explicit check every ``distributed.sync_interval`` finished
games) is fetched, verified against its sha256 and swapped in between steps: games continue
with the new network. A worker never goes back to an older generation.

Custom workers subclass ``SelfPlayWorker`` and override its hooks, e.g. to ship only long
games (see services/selfplay/examples/custom_worker.py for a complete one)::

    from azgo_selfplay import SelfPlayWorker, main

    class LongGamesOnly(SelfPlayWorker):
        def on_games_finished(self, records):
            return [r for r in records if r.num_moves >= 20]

    if __name__ == "__main__":
        raise SystemExit(main(LongGamesOnly))   # same arguments as python -m azgo_selfplay

Hooks: ``make_evaluator(net, device)`` (how the network is run: TensorRT, a remote server...),
``make_runner(settings, evaluate, generation)`` (the game loop: anything with ``step()``,
``set_model(evaluate, generation)`` and ``stats.nn_evals``), ``on_games_finished(records)``
(inspect or filter finished games; returns the ones to ship).
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from pathlib import Path

import torch

from azgo_core import protocol as P
from azgo_core.config import Settings
from azgo_core.model import AZNet, ModelFileError, make_evaluator, resolve_device
from azgo_core.records import GameRecord, encode_batch
from azgo_core.search import Evaluator
from azgo_core.selfplay import SelfPlayRunner
from azgo_runtime.client import Backoff
from azgo_runtime.service import StopFlag
from azgo_runtime.session import hello_message

from .identity import claim_worker_dir, resolve_worker_id
from .link import BrokerLink
from .models import autocast_dtype, gpu_name, verify_model
from .outbox import Batch, Outbox
from .rates import RateWindow

log = logging.getLogger("azgo.selfplay")

OUTBOX_CAP = 1000
"""Batches the outbox may hold before self-play pauses (the broker is unreachable for long)."""
GRACE_S = 5.0
"""Seconds spent delivering the outbox at stop; what is left is sent by the next run."""
MODEL_POLL_S = 2.0
"""While the broker has no model: seconds between GetModel polls (announcements come sooner)."""
ERROR_BACKOFF = (1.0, 30.0)
"""After an exception: first delay, doubling up to the second, before the runner is rebuilt."""
IDLE_WAIT_S = 0.05
"""How long one idle pass waits for a reply when there is nothing to play."""


class SelfPlayWorker:
    """A self-play worker process: ``SelfPlayWorker(settings).run()`` until the stop flag or the game limit."""

    def __init__(self, settings: Settings, *, worker_id: str | None = None, games: int | None = None,
                 seed: int | None = None, stop: StopFlag | None = None, outbox_cap: int = OUTBOX_CAP):
        self.settings = settings
        self.worker_id = resolve_worker_id(worker_id)
        self.limit = games if games is not None else (settings.self_play.games_per_worker or None)
        self.seed = seed if seed is not None else secrets.randbits(62)
        self.stop = stop if stop is not None else StopFlag(install=False)
        self.outbox_cap = outbox_cap
        self.device = resolve_device(settings.self_play.device)
        torch.set_num_threads(settings.self_play.threads)
        home = Path(settings.self_play.data_dir) / self.worker_id
        self._lock = claim_worker_dir(home)
        self.outbox = Outbox(home / "outbox")
        hello = hello_message(settings, self.worker_id, "selfplay", gpu=gpu_name(self.device),
                              parallel_games=settings.self_play.parallel_games)
        self.link = BrokerLink(settings, hello, self.outbox, self._describe)
        self.state, self.error = P.WorkerState.SYNCING, ""
        self.generation, self.evaluate, self.runner = -1, None, None
        self.pending: list[GameRecord] = []
        self.pending_since = 0.0  # when the oldest pending game finished (monotonic)
        self.games_finished = self.games_total = self.positions_total = self.nn_evals_total = 0
        self.batches_made = self.rebuilds = 0
        self._evals_seen = self._since_check = 0
        self.rates = RateWindow()
        self.error_backoff = Backoff(*ERROR_BACKOFF)
        self.model_backoff = Backoff(settings.distributed.reconnect_min, settings.distributed.reconnect_max)
        self.error_until = self.model_retry_at = self.next_model_poll = 0.0
        self._paused = False

    # --- hooks for custom workers ---------------------------------------------------------
    def make_evaluator(self, net: AZNet, device: torch.device) -> Evaluator:
        """The function the search calls: planes uint8 [B, C, N, N] -> (logits f32 [B, N*N+1], value f32 [B])."""
        return make_evaluator(net, device, autocast_dtype(device))

    def make_runner(self, settings: Settings, evaluate: Evaluator, generation: int) -> SelfPlayRunner:
        """The game loop; a new one after every exception (each with its own seed)."""
        return SelfPlayRunner(settings.selfplay_config(), evaluate, model_generation=generation,
                              worker_id=self.worker_id, seed=self.seed + self.rebuilds)

    def on_games_finished(self, records: list[GameRecord]) -> list[GameRecord]:
        """Finished games, before they are batched; return the ones to ship (all, by default)."""
        return records

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> int:
        """Play until stopped or the game limit; then ship what is finished. Returns the exit status."""
        log.info("worker %s: device %s, seed %d, outbox %s%s", self.worker_id, self.device, self.seed, self.outbox.dir,
                 f", stopping after {self.limit} games" if self.limit else "")
        self.link.start()
        grace = GRACE_S
        try:
            while not self.stop.is_set() and not self._limit_reached():
                try:
                    self._tick()
                except Exception as e:  # a worker never dies of one bad step: report it, back off, go on
                    self._fail(e)
        except KeyboardInterrupt:  # a second Ctrl-C: the user wants out now; the outbox keeps what is unsent
            grace = 0.0
        self._finish(grace)
        return 0

    def _tick(self) -> None:
        now = time.monotonic()
        self._sync_model(now)
        if self.state == P.WorkerState.ERROR and now >= self.error_until:
            self._recover()
        if self._can_play():
            self.link.pump(0.0)
            self._play_step()
        else:
            self.link.pump(IDLE_WAIT_S)

    def _limit_reached(self) -> bool:
        return self.limit is not None and self.games_finished >= self.limit

    def _can_play(self) -> bool:
        full = len(self.outbox) >= self.outbox_cap
        if full != self._paused:
            self._paused = full
            if full:
                log.warning("outbox full (%d batches): self-play paused until the broker acks", len(self.outbox))
            else:
                log.info("outbox below %d batches: self-play resumes", self.outbox_cap)
        return self.runner is not None and not full

    def _set_state(self, state: P.WorkerState, error: str = "") -> None:
        if (state, error) != (self.state, self.error):
            self.state, self.error = state, error
            self.link.heartbeat_now()

    # --- the model ------------------------------------------------------------------------
    def _sync_model(self, now: float) -> None:
        """Ask for a newer generation the broker mentioned (or poll while there is none); adopt a fetched one."""
        newest = self.link.newest
        if now >= self.model_retry_at:
            if newest is not None and newest.generation > self.generation:
                if self.state == P.WorkerState.ACTIVE:
                    self._set_state(P.WorkerState.SYNCING)
                self.link.request_model()
            elif self.generation < 0 and now >= self.next_model_poll and self.link.request_model():
                self.next_model_poll = now + MODEL_POLL_S
        fetched = self.link.take_model()
        if fetched is not None:
            self._adopt(*fetched)

    def _adopt(self, info: P.ModelInfo, blob: bytes) -> None:
        """Verify, load and swap in a fetched model that is newer than ours (never an older one)."""
        if info.generation <= self.generation:
            return
        gen, t0 = P.generation_id(info.generation), time.monotonic()
        try:
            net, _ = verify_model(info, blob, self.settings.board.size, self.settings.model.history)
        except ModelFileError as e:
            delay = self.model_backoff.delay()
            self.model_retry_at = time.monotonic() + delay
            log.error("model %s refused, not played: %s; fetching again in %.1f s", gen, e, delay)
            return
        self.model_backoff.reset()
        evaluate = self.make_evaluator(net, self.device)
        if self.runner is not None:
            self.runner.set_model(evaluate, info.generation)  # between steps: games go on with the new net
        elif self.state != P.WorkerState.ERROR:
            self.runner = self._build_runner(evaluate, info.generation)
        self.evaluate, self.generation = evaluate, info.generation
        if self.state != P.WorkerState.ERROR:
            self._set_state(P.WorkerState.ACTIVE)
        log.info("model %s adopted: fetch + load %.2f s (load %.2f s)", gen, time.monotonic() - self.link.model_requested_at,
                 time.monotonic() - t0)

    def _build_runner(self, evaluate: Evaluator, generation: int):
        runner = self.make_runner(self.settings, evaluate, generation)
        self._evals_seen = 0
        return runner

    # --- playing --------------------------------------------------------------------------
    def _play_step(self) -> None:
        finished = self.runner.step()
        evals = self.runner.stats.nn_evals
        self.nn_evals_total += max(0, evals - self._evals_seen)
        self._evals_seen = evals
        if not finished:
            return
        if self.limit is not None:  # games beyond the limit were never asked for
            finished = finished[: self.limit - self.games_finished]
        self.games_finished += len(finished)
        self._since_check += len(finished)
        sync = self.settings.distributed.sync_interval
        if sync and self._since_check >= sync:
            # an explicit check costs one heartbeat: its ack names the current model, and only
            # a newer one is then fetched (announcements usually bring the news first)
            self._since_check = 0
            self.link.heartbeat_now()
        kept = self.on_games_finished(finished)
        if kept is None:
            raise TypeError(f"{type(self).__name__}.on_games_finished returned None; return the records to ship")
        kept = list(kept)
        if kept and not self.pending:
            self.pending_since = time.monotonic()
        self.pending.extend(kept)
        self.games_total += len(kept)
        self.positions_total += sum(r.num_moves for r in kept)
        while len(self.pending) >= self.settings.distributed.batch_size:
            self._flush(self.settings.distributed.batch_size)
            self.error_backoff.reset()  # a whole batch since the last exception: healthy again
        # a slow worker (a CPU, a big board) ships what it has rather than hold games for long
        wait = self.settings.distributed.batch_max_wait
        if wait and self.pending and time.monotonic() - self.pending_since >= wait:
            self._flush(len(self.pending))

    def _flush(self, n: int) -> None:
        """Put the first ``n`` pending games into a batch: outbox first (durable), then the send queue."""
        records = self.pending[:n]
        header = P.BatchHeader(batch_id=f"{self.worker_id}-{uuid.uuid4().hex}", worker_id=self.worker_id,
                               games=len(records), positions=sum(r.num_moves for r in records),
                               generations=sorted({r.model_generation for r in records}))
        self.outbox.put(Batch(header, encode_batch(records, compress=self.settings.distributed.compression),
                              created=time.time()))
        del self.pending[:n]  # only now: a failed write keeps them for the next try
        self.pending_since = time.monotonic()
        self.batches_made += 1
        self.link.enqueue(header.batch_id)

    def _fail(self, exc: Exception) -> None:
        """Report the exception (state Error), drop the runner and its games in progress, back off."""
        delay = self.error_backoff.delay()
        log.exception("self-play failed; games in progress are dropped, rebuilding in %.1f s", delay)
        self.runner = None
        self.error_until = self.model_retry_at = time.monotonic() + delay
        self._set_state(P.WorkerState.ERROR, f"{type(exc).__name__}: {exc}"[:4000])

    def _recover(self) -> None:
        if self.evaluate is None:
            self._set_state(P.WorkerState.SYNCING)
            return
        self.rebuilds += 1
        self.runner = self._build_runner(self.evaluate, self.generation)
        log.info("runner rebuilt (%d since start) with model %s", self.rebuilds, P.generation_id(self.generation))
        self._set_state(P.WorkerState.ACTIVE)

    # --- reporting and stopping -----------------------------------------------------------
    def _describe(self) -> dict:
        """The heartbeat's figures (``BrokerLink`` adds the worker id and outbox size)."""
        self.rates.add(time.monotonic(), games=self.games_total, positions=self.positions_total, nn_evals=self.nn_evals_total)
        r = self.rates.rates()
        return dict(state=self.state, generation=self.generation, games_total=self.games_total,
                    positions_total=self.positions_total, games_per_s=r["games"], positions_per_s=r["positions"],
                    nn_evals_per_s=r["nn_evals"], error=self.error)

    def _finish(self, grace: float) -> None:
        """Stop: games in progress are dropped; finished ones go into a last batch; deliver for a grace period."""
        self.runner = None
        try:
            if self.pending:
                self._flush(len(self.pending))
        except Exception:
            log.exception("could not write the last %d games to the outbox", len(self.pending))
        delivered = self.link.drain(grace)
        log.info("stopped: games=%d positions=%d batches=%d acked=%d duplicates=%d rejected=%d outbox=%d%s",
                 self.games_total, self.positions_total, self.batches_made, self.link.acked, self.link.duplicates,
                 self.link.rejected, len(self.outbox), "" if delivered else " (left for the next run)")
        self.link.close()
        self._lock.close()
