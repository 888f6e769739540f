"""The learner: trains on the broker's window of recent games, publishes generations, checkpoints.

``Learner.run`` is the whole service, top to bottom:

    start        hello; resume from the newest readable checkpoint, else continue from the
                 broker's current model, else create generation 0 from the seed; make sure
                 the broker holds our generation
    until stopped:
      pull       new stored batches into the training window (every POLL_INTERVAL seconds)
      train      one step, when the window holds ``min_positions`` and the sample ratio
                 allows it (``ratio.SampleRatio``)
      publish    every ``steps_per_generation`` steps the weights become the next
                 generation, then a checkpoint
      or wait    for new games, polling the broker
      checkpoint every ``checkpoint_interval`` seconds
      report     every ``report_interval`` seconds (broker, metrics.jsonl, TensorBoard)
      heartbeat  every ``distributed.heartbeat_interval`` seconds, like every process (the
                 session's ``pump``; requests are blocking ``BrokerSession.call``s)
    stop         (SIGTERM/SIGINT) the step in progress ends, a checkpoint is written

Generation numbers never go backwards: the next one is always above both the checkpoint's
and the broker's current generation (the learner may have died after publishing and before
checkpointing). A broker that is away is retried with back-off for as long as it takes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

from azgo_core import protocol as P
from azgo_core.config import Settings, settings_yaml
from azgo_core.files import atomic_write
from azgo_core.health import HealthWindow
from azgo_core.model import ModelFileError, load_model, resolve_device
from azgo_core.train import PositionSampler
from azgo_runtime.client import BrokerUnavailable, RemoteError
from azgo_runtime.service import StopFlag
from azgo_runtime.session import BrokerSession, hello_message

from .checkpoint import Checkpoint, CheckpointError, newest_checkpoint, prune_checkpoints, remove_partial_writes, write_checkpoint
from .ratio import SampleRatio
from .report import Reporter
from .trainer import Trainer
from .window import WindowFeed, moves_window

log = logging.getLogger("azgo.learner")

POLL_INTERVAL = 0.5  # seconds between reads of new games from the broker, training or waiting
WORKER_ID = "learner"


class Learner:
    """One learner process's state and loop (see the module docstring)."""

    def __init__(self, settings: Settings, stop: StopFlag):
        self.settings = settings
        self.cfg = settings.learner
        self.stop = stop
        self.data_dir = Path(self.cfg.data_dir)
        self.ckpt_dir = self.data_dir / "checkpoints"
        self.session = BrokerSession(settings, hello_message(settings, WORKER_ID, "learner"), keys="learner",
                                     subscribe=False, should_stop=stop.is_set)
        self.device = resolve_device(self.cfg.device)
        self.trainer = Trainer(settings.net_config(), settings.train_config(), seed=self.cfg.seed, device=self.device)
        # a position more than a window behind can no longer be trained on: that is the write-off slack
        self.ratio = SampleRatio(self.cfg.max_samples_per_position, self.cfg.min_samples_per_position,
                                 slack=self.cfg.window_positions)
        sampler = PositionSampler(history=settings.model.history, window=self.cfg.window_positions)
        self.health = HealthWindow(settings.board.size, resign_at=settings.search.resign_threshold)
        self.feed = WindowFeed(sampler, moves_window(self.cfg.window_positions, settings.search.full_search_prob),
                               health=self.health)
        self._warned: set[str] = set()  # health warnings logged (each kind once until it clears)
        self.reporter = Reporter(self.data_dir, self.cfg.tensorboard)
        self._report_failing = False  # metrics.jsonl could not be written (said once)
        self.generation = -1  # the broker's current generation: the last we published, or its own when higher
        self.published_at = 0  # trainer step of the last publish
        self.started = False
        self.waiting = False
        now = time.monotonic()
        self._next_pull = now
        self._next_checkpoint = now + self.cfg.checkpoint_interval
        self._next_report = now + self.cfg.report_interval
        self._generation_began = now
        self._generation_losses: list[float] = []

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        """Start, train until the stop flag is set, then write a last checkpoint."""
        try:
            self.start()
            while not self.stop:
                self.pull_games()
                if self.ready():
                    self.train_step()
                    if self.trainer.step - self.published_at >= self.cfg.steps_per_generation:
                        self.publish()
                        self.checkpoint()
                else:
                    self.wait_for_games()
                now = time.monotonic()
                if now >= self._next_checkpoint:
                    self.checkpoint()
                if now >= self._next_report:
                    self.report()
                self.session.pump()  # a heartbeat when one is due
        except BrokerUnavailable:
            if not self.stop:
                raise  # only a stop request ends the retries
        finally:
            self.close()

    def start(self) -> None:
        """Hello, then resume, adopt the broker's model or create generation 0 (see the module docstring)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.data_dir / "config.yaml", settings_yaml(self.settings).encode())
        log.info("learner on %s, %d torch thread(s); resolved config in %s", self.device, self.cfg.threads,
                 self.data_dir / "config.yaml")
        broker_model = self.session.welcome().model
        remove_partial_writes(self.ckpt_dir)
        checkpoint = newest_checkpoint(self.ckpt_dir)
        if checkpoint is not None:
            self.resume(checkpoint, broker_model)
        elif broker_model is not None:
            self.adopt(broker_model)
        else:
            self.publish()
            log.info("created generation %s from seed %d", P.generation_id(self.generation), self.cfg.seed)
        self.started = True
        self.checkpoint()

    def pull_games(self) -> None:
        """Read new stored batches into the window and count their positions (at most every POLL_INTERVAL)."""
        if time.monotonic() < self._next_pull:
            return
        self._next_pull = time.monotonic() + POLL_INTERVAL
        try:
            new = self.feed.pull(self.session.call)
        except RemoteError as exc:
            log.error("could not read games from the broker: %s", exc)
            return
        written_off = self.ratio.add_positions(new)
        if written_off:
            log.warning("training lags self-play: wrote off %.0f positions (%.0f in all) to stay above %g samples "
                        "per position", written_off, self.ratio.written_off, self.ratio.min_per_position)

    def ready(self) -> bool:
        """The window is big enough and the sample ratio allows another step."""
        return len(self.feed.sampler) >= self.cfg.min_positions and self.ratio.may_train()

    def train_step(self) -> None:
        """One optimisation step; a failed one is logged and skipped."""
        try:
            metrics = self.trainer.train(self.feed.sampler)
        except (ValueError, FloatingPointError) as exc:
            log.error("training step skipped: %s", exc)
            self.stop.wait(POLL_INTERVAL)  # a persistent fault logs twice a second, not in a hot loop
            return
        self.waiting = False
        self.ratio.trained(self.trainer.config.batch_size)
        self.reporter.add_step(metrics)
        self._generation_losses.append(metrics["total_loss"])

    def wait_for_games(self) -> None:
        """Nothing to train on: say so once, then sleep until the next poll."""
        if not self.waiting:
            self.waiting = True
            log.info("waiting for games: window %d positions (%d to start), %.2f samples per new position (max %g)",
                     len(self.feed.sampler), self.cfg.min_positions, self.ratio.ratio, self.ratio.max_per_position)
        self.stop.wait(max(0.0, self._next_pull - time.monotonic()))  # POLL_INTERVAL is well below a heartbeat's

    # --- generations ----------------------------------------------------------------------
    def publish(self, generation: int | None = None) -> None:
        """Send the weights as the next generation (or as ``generation``); retried while the broker is away."""
        gen = self.generation + 1 if generation is None else generation
        while True:
            data = self.trainer.model_bytes(gen, self.ratio.samples)
            try:
                self.session.call(P.PublishModel(generation=gen, sha256=hashlib.sha256(data).hexdigest()), [data])
                break
            except RemoteError as exc:
                current = self.session.welcome().model
                current_gen = -1 if current is None else current.generation
                if exc.code != P.ErrorCode.STALE_GENERATION or current_gen < gen:
                    log.error("the broker refused generation %d: %s (training goes on)", gen, exc)
                    self.published_at = self.trainer.step
                    return
                log.warning("generation %d is stale, the broker is at %d: publishing as %d", gen, current_gen, current_gen + 1)
                gen = current_gen + 1
        losses, self._generation_losses = self._generation_losses, []
        now = time.monotonic()
        loss = f"loss {sum(losses) / len(losses):.4f}" if losses else "no training steps"
        log.info("published generation %s at step %d (%s, %.1f s for the generation)", P.generation_id(gen),
                 self.trainer.step, loss, now - self._generation_began)
        self.generation, self.published_at, self._generation_began = gen, self.trainer.step, now

    def resume(self, checkpoint: Checkpoint, broker_model: P.ModelInfo | None) -> None:
        """Continue from ``checkpoint``; republish or renumber when the broker disagrees with it."""
        notes = self.trainer.restore(checkpoint.tensors, checkpoint.state)
        state = checkpoint.state
        try:
            self.generation, self.published_at = int(state["generation"]), int(state["published_at"])
            self.ratio.restore(state["ratio"])
            self.feed.counted_through = int(state["cursor"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{checkpoint.path}: learner state incomplete ({exc!r})") from None
        log.info("resumed from %s: step %d, generation %d, %d samples trained on %.0f positions, game store cursor %d",
                 checkpoint.path.name, self.trainer.step, self.generation, self.ratio.samples, self.ratio.positions,
                 self.feed.counted_through)
        for note in notes:
            log.warning("%s", note)
        current = -1 if broker_model is None else broker_model.generation
        if current < self.generation or current < 0:
            log.warning("the broker's generation is %d, behind this checkpoint's %d (it lost its data?): republishing",
                        current, self.generation)
            self.publish(max(self.generation, 0))
        elif current > self.generation:
            log.info("the broker is at generation %d, beyond this checkpoint's %d (published after it was written): "
                     "the next generation is %d", current, self.generation, current + 1)
            self.generation, self.published_at = current, self.trainer.step

    def adopt(self, model: P.ModelInfo) -> None:
        """No checkpoint, but the broker has a model: continue from its weights (and its numbering)."""
        self.generation, self.published_at = model.generation, self.trainer.step
        try:
            reply = self.session.call(P.GetModel())
            info = reply.message.model
            net, meta = load_model(reply.blobs[0], self.settings.board.size, expected_sha256=info.sha256)
        except (RemoteError, ModelFileError) as exc:
            log.warning("no checkpoint, and the broker's model cannot be used (%s): training from the seed; "
                        "the next generation is %d", exc, model.generation + 1)
            return
        if not self.trainer.load_weights(net):
            log.warning("no checkpoint, and the broker's generation %d is another network (%s): training from the seed; "
                        "the next generation is %d", info.generation, meta.config, info.generation + 1)
        else:
            self.trainer.step = meta.training_steps
            log.info("no checkpoint: continuing from the broker's generation %d (step %d)", info.generation,
                     self.trainer.step)
        self.generation, self.published_at = info.generation, self.trainer.step

    # --- state, reports, broker -----------------------------------------------------------
    def checkpoint(self) -> bool:
        """Write a checkpoint of everything needed to resume, and drop the oldest beyond keep_checkpoints.

        A write that fails (a full disk) is logged and tried again at the next interval; training
        goes on, from the last checkpoint that was written should the learner stop meanwhile.
        Returns whether it was written.
        """
        tensors, state = self.trainer.checkpoint_parts()
        state.update(generation=self.generation, published_at=self.published_at, cursor=self.feed.counted_cursor,
                     ratio=self.ratio.counters())
        self._next_checkpoint = time.monotonic() + self.cfg.checkpoint_interval
        try:
            path = write_checkpoint(self.ckpt_dir, Checkpoint(tensors, state, settings_yaml(self.settings)))
        except OSError as exc:  # atomic_write leaves no partial file behind
            log.error("checkpoint not written at step %d: %s (training goes on; next try in %g s)", self.trainer.step,
                      exc, self.cfg.checkpoint_interval)
            return False
        prune_checkpoints(self.ckpt_dir, self.cfg.keep_checkpoints)
        log.debug("checkpoint %s written", path.name)
        return True

    def report(self) -> None:
        """Send the interval's figures to the broker and append them to the logs."""
        self._next_report = time.monotonic() + self.cfg.report_interval
        figures = self.reporter.figures(
            step=self.trainer.step, generation=self.generation, samples_trained=self.ratio.samples,
            positions_seen=self.ratio.seen, waiting=self.waiting, window_positions=len(self.feed.sampler),
            samples_per_position=self.ratio.ratio, positions_written_off=self.ratio.written_off, health=self.health)
        self.log_health(figures.health_warnings)
        try:
            self.reporter.write(figures)
            if self._report_failing:
                log.info("learner metrics written again to %s", self.reporter.path)
            self._report_failing = False
        except OSError as exc:  # a full disk: the figures still go to the broker
            if not self._report_failing:
                log.error("cannot write the learner metrics to %s: %s (said once until it works again)",
                          self.reporter.path, exc)
            self._report_failing = True
        try:
            self.session.call(figures.message(), retry=False)
        except (BrokerUnavailable, RemoteError) as exc:
            log.warning("learner report not delivered: %s", exc)

    def log_health(self, warnings: list[str]) -> None:
        """Log a collapse of self-play when it starts (and once more when it is over)."""
        kinds = {w.split(" ", 1)[0] for w in warnings}
        for w in warnings:
            if w.split(" ", 1)[0] not in self._warned:
                log.warning("training health: %s", w)
        for gone in self._warned - kinds:
            log.info("training health: the %r warning has cleared", gone)
        self._warned = kinds

    def close(self) -> None:
        """Last checkpoint (when stopping after a clean start), then release files and sockets."""
        try:
            if self.started and self.stop and self.checkpoint():
                log.info("stopped at step %d, generation %d: checkpoint written", self.trainer.step, self.generation)
        finally:
            self.reporter.close()
            self.session.close()
