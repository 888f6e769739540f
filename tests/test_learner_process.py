"""The learner as a real process against a real broker on loopback (tiny 5x5 config).

The test plays the self-play worker itself: it says hello and submits batches of real games
(uniform evaluator) tagged with the broker's current generation. Checked: generation 0 is
created, generations follow once enough positions arrive, the learner waits at the sample
ratio, resumes after SIGKILL without its step or the generation numbers going backwards,
outlives a broker restart, renumbers after a checkpoint older than the broker's generation,
and exits 0 with a checkpoint on SIGTERM.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from broker_helpers import batch, play_games, tiny_settings
from procs import Service, get_json, http_url, router_endpoint, tiny_config, wait_for

from azgo_core import protocol as P
from azgo_learner.checkpoint import checkpoint_files, read_checkpoint
from azgo_runtime.client import BrokerClient

TIMEOUT = 40  # seconds for any one thing to happen (a learner start imports torch on a busy machine)


class Feeder:
    """A stand-in self-play worker: real games at the broker's current generation, in batches of 4."""

    _ids = itertools.count()

    def __init__(self, config: Path):
        self.config = config
        self.settings = tiny_settings(config)

    def submit(self, batches: int) -> None:
        client = BrokerClient(router_endpoint(self.config), timeout=10)
        try:
            welcome = client.request(P.Hello(worker_id="feeder", board_size=self.settings.board.size)).message
            generation = welcome.model.generation
            for _ in range(batches):
                records = play_games(self.settings, 4, "feeder", generation=generation)
                message, blobs = batch(f"feeder-{next(self._ids)}", "feeder", records)
                assert isinstance(client.request(message, blobs).message, P.BatchAck)
        finally:
            client.close()


class Generations:
    """The broker's current generation as /status shows it, checked never to go backwards."""

    def __init__(self, config: Path):
        self.url = http_url(config, "/status")
        self.seen: list[int] = []

    def current(self) -> int:
        model = get_json(self.url)["model"]
        generation = -1 if model is None else model["generation"]
        assert not self.seen or generation >= self.seen[-1], f"generation went back: {self.seen[-1]} -> {generation}"
        self.seen.append(generation)
        return generation

    def wait_above(self, generation: int, what: str) -> int:
        return wait_for(lambda: (g := self.current()) > generation and g, TIMEOUT, what)


def reports(data_dir: Path) -> list[dict]:
    path = data_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def published(log: str) -> list[int]:
    return [int(g) for g in re.findall(r"published generation (\d+) at step", log)]


def wait_until_waiting(data_dir: Path, reports_in_a_row: int = 4) -> dict:
    """Wait for the newest ``reports_in_a_row`` reports to say waiting, all at one step and generation.

    A learner that kept training (or publishing) beyond its sample ratio never gets there.
    Returns the newest report.
    """
    def settled():
        last = reports(data_dir)[-reports_in_a_row:]
        same = {(r["waiting"], r["step"], r["generation"]) for r in last}
        return len(last) == reports_in_a_row and len(same) == 1 and last[-1]["waiting"] and last[-1]

    return wait_for(settled, TIMEOUT, f"{reports_in_a_row} reports in a row saying the learner waits at one step")


def stop_all(services: list[Service]) -> None:
    for service in services:
        if service.alive():
            service.kill()
    print("\n".join(f"--- {s.log_path.name}\n{s.log()}" for s in services))


@dataclass
class Run:
    feeder: Feeder
    generations: Generations
    services: list[Service]
    """Every service started, later ones appended: all are killed at the end."""


@contextmanager
def broker_and_learner(tmp_path: Path, config: Path) -> Iterator[Run]:
    """A broker and a learner on ``config`` once generation 0 is published; at the end every
    service in ``services`` is killed and its log printed."""
    run = Run(Feeder(config), Generations(config),
              [Service("broker", config, log_dir=tmp_path), Service("learner", config, log_dir=tmp_path)])
    try:
        wait_for(lambda: run.generations.current() == 0, TIMEOUT, "generation 0")
        yield run
    finally:
        stop_all(run.services)


def test_learner_trains_waits_and_resumes_after_sigkill_and_broker_restart(tmp_path):
    config = tiny_config(tmp_path)
    data_dir = tmp_path / "learner"
    settings = tiny_settings(config)
    learner_cfg, batch_size = settings.learner, settings.train.batch_size
    with broker_and_learner(tmp_path, config) as run:
        feeder, generations, services = run.feeder, run.generations, run.services
        broker, learner = services
        assert "created generation 000000 from seed 0" in learner.log()

        feeder.submit(3)  # ~12 games, a few hundred policy targets
        generations.wait_above(1, "generation 2")
        waiting = wait_until_waiting(data_dir)
        assert waiting["step"] >= 8 and waiting["generation"] == generations.current()
        # it stopped at the ratio: just past max_samples_per_position samples per new position (no write-offs here)
        bound = learner_cfg.max_samples_per_position * waiting["positions_seen"]
        assert bound < waiting["samples_trained"] <= bound + batch_size
        assert learner.log().count("waiting for games") >= 1

        # SIGKILL: it resumes from its checkpoint, neither the step nor the generations go back
        learner.kill()
        before = generations.current()
        learner = Service("learner", config, log_dir=tmp_path, tag="learner2")
        services.append(learner)
        resumed = wait_for(lambda: re.search(r"resumed from ckpt-(\d+)\.safetensors: step (\d+), generation (\d+)",
                                             learner.log()), TIMEOUT, "the learner to resume")
        assert 0 < int(resumed[2]) <= waiting["step"] and int(resumed[3]) == before
        feeder.submit(2)
        after = generations.wait_above(before, "a generation after the restart")
        assert published(learner.log())[0] == before + 1 and after > before

        # the broker goes away: the learner retries and carries on when it is back
        wait_until_waiting(data_dir, reports_in_a_row=2)
        broker.kill()
        wait_for(lambda: "reconnecting in" in learner.log(), TIMEOUT, "the learner to retry")  # the session backs off
        assert learner.alive()
        broker = Service("broker", config, log_dir=tmp_path, tag="broker2")
        services.append(broker)
        feeder.submit(2)
        generations.wait_above(after, "a generation after the broker restart")

        assert learner.stop() == 0
        assert re.search(r"stopped at step \d+, generation \d+: checkpoint written", learner.log())


def test_sigterm_checkpoints_and_generations_continue_past_an_old_checkpoint(tmp_path):
    # checkpoints only at start, publishes and stop, and all of them kept
    config = tiny_config(tmp_path, learner={"checkpoint_interval": 600.0, "keep_checkpoints": 50})
    ckpt_dir = tmp_path / "learner" / "checkpoints"
    with broker_and_learner(tmp_path, config) as run:
        feeder, generations, services = run.feeder, run.generations, run.services
        learner = services[1]
        feeder.submit(3)
        generations.wait_above(2, "generation 3")
        wait_until_waiting(tmp_path / "learner", reports_in_a_row=2)
        assert learner.stop() == 0
        stopped = re.search(r"stopped at step (\d+), generation (\d+)", learner.log())
        assert stopped, learner.log()
        newest = read_checkpoint(checkpoint_files(ckpt_dir)[0])
        assert newest.step == int(stopped[1]) and newest.state["generation"] == int(stopped[2]) == generations.current()

        # as if the learner had died after publishing generations it never checkpointed
        top = generations.current()
        old = next(c for c in map(read_checkpoint, checkpoint_files(ckpt_dir)) if c.state["generation"] == 1)
        for path in checkpoint_files(ckpt_dir):
            if path.name > old.path.name:
                path.unlink()
        learner = Service("learner", config, log_dir=tmp_path, tag="learner2")
        services.append(learner)
        # its counters come from the old checkpoint too, so it trains on games already stored
        generations.wait_above(top, "a generation above the broker's")
        log = learner.log()
        assert f"resumed from {old.path.name}: step {old.step}, generation 1" in log
        assert f"the next generation is {top + 1}" in log
        assert published(log)[0] == top + 1
        assert learner.stop() == 0


def test_learner_recovers_when_the_broker_or_itself_lost_its_data(tmp_path):
    config = tiny_config(tmp_path)
    with broker_and_learner(tmp_path, config) as run:
        feeder, generations, services = run.feeder, run.generations, run.services
        broker, learner = services
        feeder.submit(2)
        top = generations.wait_above(1, "generation 2")
        wait_until_waiting(tmp_path / "learner", reports_in_a_row=2)
        assert learner.stop() == 0
        top = generations.current()

        # the broker loses its data dir: the learner republishes its checkpoint's generation, rereads the store
        broker.kill()
        shutil.rmtree(tmp_path / "broker")
        broker = Service("broker", config, log_dir=tmp_path, tag="broker2")
        learner = Service("learner", config, log_dir=tmp_path, tag="learner2")
        services += [broker, learner]
        generations = Generations(config)
        wait_for(lambda: generations.current() == top, TIMEOUT, f"generation {top} republished")
        feeder.submit(2)
        generations.wait_above(top, "a generation trained on the new broker's games")
        log = learner.log()
        assert "republishing" in log and "reading it from the start" in log
        assert learner.stop() == 0
        top = generations.current()

        # the learner loses its data dir: it continues from the broker's model and numbering
        shutil.rmtree(tmp_path / "learner")
        learner = Service("learner", config, log_dir=tmp_path, tag="learner3")
        services.append(learner)
        wait_for(lambda: "no checkpoint: continuing from the broker's generation" in learner.log(), TIMEOUT, "adoption")
        generations.wait_above(top, "a generation after the adopted one")  # the store's games count as new
        assert published(learner.log())[0] == top + 1
        assert learner.stop() == 0
