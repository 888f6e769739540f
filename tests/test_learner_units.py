"""The learner's parts without processes: the sample-ratio governor, checkpoints (exact resume,
newest readable, pruning, no pickle) and the window fed from stored batches."""

from __future__ import annotations

import json
import logging
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import safetensors
import torch
from broker_helpers import play_games
from procs import tiny_config

from azgo_core import protocol as P
from azgo_core.config import load_settings
from azgo_core.records import encode_batch
from azgo_core.train import PositionSampler, train_step
from azgo_learner.checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoint_files,
    newest_checkpoint,
    prune_checkpoints,
    read_checkpoint,
    remove_partial_writes,
    write_checkpoint,
)
from azgo_learner.ratio import SampleRatio
from azgo_learner.trainer import Trainer
from azgo_learner.window import WindowFeed, moves_window
from azgo_runtime.client import Reply

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    path = tiny_config(tmp_path_factory.mktemp("cfg"), train={"batch_size": 16, "warmup_steps": 5, "lr": 0.05})
    return load_settings(path)


@pytest.fixture(scope="module")
def games(settings):
    return play_games(settings, 8, "w1", generation=0, seed=7)


def sampler_of(settings, games) -> PositionSampler:
    return PositionSampler(games, history=settings.model.history, window=settings.learner.window_positions)


# --------------------------------------------------------------------------- sample ratio


def test_ratio_waits_above_max_and_resumes_with_new_positions():
    ratio = SampleRatio(max_per_position=4.0, min_per_position=0.5, slack=1000)
    ratio.add_positions(10)
    steps = 0
    while ratio.may_train():
        ratio.trained(8)
        steps += 1
    assert steps == 6 and ratio.samples == 48  # 40 <= 4 * 10 still trains; 48 does not
    assert ratio.ratio == pytest.approx(4.8)
    assert ratio.add_positions(2) == 0.0  # 48 <= 4 * 12 again
    assert ratio.may_train()


def test_ratio_writes_off_what_training_cannot_catch_up_with():
    ratio = SampleRatio(max_per_position=4.0, min_per_position=0.5, slack=100)
    assert ratio.add_positions(100) == 0.0  # the first window before any step is no lag
    ratio.trained(50)  # S / r_min + slack = 200 positions may be owed
    assert ratio.add_positions(50) == 0.0
    written_off = ratio.add_positions(150)
    assert written_off == pytest.approx(100.0)
    assert ratio.positions == pytest.approx(200.0) and ratio.seen == 300 and ratio.written_off == pytest.approx(100.0)
    # what is left is a backlog the learner can work through: it may train, and stops at r_max
    assert ratio.may_train()
    ratio.trained(4 * 200 - 50)
    assert ratio.may_train()  # S = r_max * P exactly
    ratio.trained(1)
    assert not ratio.may_train()


def test_ratio_without_minimum_never_writes_off_and_counters_round_trip():
    ratio = SampleRatio(max_per_position=2.0, min_per_position=0.0)
    assert ratio.add_positions(10_000) == 0.0
    ratio.trained(64)
    other = SampleRatio(max_per_position=2.0, min_per_position=0.0)
    other.restore(json.loads(json.dumps(ratio.counters())))
    assert other.counters() == ratio.counters()
    with pytest.raises(ValueError, match="samples"):
        other.restore({"positions": 1.0, "seen": 1, "written_off": 0.0})
    with pytest.raises(ValueError, match="min_per_position"):
        SampleRatio(max_per_position=1.0, min_per_position=2.0)


# --------------------------------------------------------------------------- checkpoints


def make_trainer(settings, seed: int = 3) -> Trainer:
    return Trainer(settings.net_config(), settings.train_config(), seed=seed)


def save(trainer: Trainer, directory: Path, **extra) -> Path:
    tensors, state = trainer.checkpoint_parts()
    state.update(extra)
    return write_checkpoint(directory, Checkpoint(tensors, state, settings="board: {size: 5}\n"))


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_resume_draws_the_same_batch_and_takes_the_same_step(tmp_path, settings, games, optimizer):
    settings = settings.model_copy(update={"train": settings.train.model_copy(update={"optimizer": optimizer})})
    sampler = sampler_of(settings, games)
    original = make_trainer(settings)
    for _ in range(3):
        original.train(sampler)
    path = save(original, tmp_path / "ckpt")
    assert path.name == "ckpt-000000003.safetensors"

    resumed = make_trainer(settings, seed=99)  # other weights and RNG: everything must come from the file
    fresh = make_trainer(settings, seed=99)
    checkpoint = read_checkpoint(path)
    torch.manual_seed(12345)
    assert resumed.restore(checkpoint.tensors, checkpoint.state) == []
    assert torch.equal(torch.get_rng_state(), checkpoint.tensors["rng.torch"])
    assert resumed.step == 3 and resumed.scheduler.last_epoch == original.scheduler.last_epoch
    assert resumed.optimizer.param_groups[0]["lr"] == original.optimizer.param_groups[0]["lr"]
    moments = "momentum_buffer" if optimizer == "sgd" else "exp_avg"
    for p_orig, p_res in zip(original.net.parameters(), resumed.net.parameters()):
        assert torch.equal(original.optimizer.state[p_orig][moments], resumed.optimizer.state[p_res][moments])

    batches = [sampler.sample(settings.train.batch_size, t.rng) for t in (original, resumed, fresh)]
    assert all(np.array_equal(a, b) for a, b in zip(batches[0], batches[1]))
    assert not np.array_equal(batches[0].planes, batches[2].planes) or not np.array_equal(batches[0].pi, batches[2].pi)
    cfg = settings.train_config()
    after = [train_step(t.net, t.optimizer, t.scheduler, b, cfg) for t, b in zip((original, resumed, fresh), batches)]
    assert after[0]["total_loss"] == after[1]["total_loss"] and after[0]["lr"] == after[1]["lr"]
    assert after[0]["total_loss"] != after[2]["total_loss"]
    for a, b in zip(original.net.state_dict().values(), resumed.net.state_dict().values()):
        assert torch.equal(a, b)


def test_restore_refuses_another_architecture_and_reports_changed_hyperparameters(tmp_path, settings):
    trainer = make_trainer(settings)
    path = save(trainer, tmp_path)
    checkpoint = read_checkpoint(path)
    bigger = settings.model_copy(update={"model": settings.model.model_copy(update={"channels": 16})})
    with pytest.raises(CheckpointError, match="config asks for"):
        make_trainer(bigger).restore(checkpoint.tensors, checkpoint.state)
    other_momentum = settings.model_copy(update={"train": settings.train.model_copy(update={"momentum": 0.5})})
    notes = make_trainer(other_momentum).restore(checkpoint.tensors, checkpoint.state)
    assert any("momentum changed from 0.9 to 0.5" in n for n in notes)


def test_a_checkpoint_from_before_the_auxiliary_heads_resumes_only_as_the_old_network(tmp_path, settings):
    def model(aux: bool):
        return settings.model_copy(update={"model": settings.model.model_copy(update={"aux_heads": aux, "global_pooling": aux})})

    old = make_trainer(model(False))
    checkpoint = read_checkpoint(save(old, tmp_path))
    state = dict(checkpoint.state)
    arch = json.loads(state["architecture"])
    del arch["aux_heads"], arch["global_pooling"]  # as written before the fields existed
    state["architecture"] = json.dumps(arch)
    with pytest.raises(CheckpointError, match="aux_heads=False.*config asks for.*aux_heads=True"):
        make_trainer(model(True)).restore(checkpoint.tensors, state)
    resumed = make_trainer(model(False))
    resumed.restore(checkpoint.tensors, state)
    assert all(torch.equal(a, b) for a, b in zip(old.net.state_dict().values(), resumed.net.state_dict().values()))


@pytest.mark.parametrize("damage", ["missing", "wrong dtype"])
def test_restore_without_a_usable_torch_rng_state_is_a_checkpoint_error(tmp_path, settings, damage):
    checkpoint = read_checkpoint(save(make_trainer(settings), tmp_path))
    tensors = dict(checkpoint.tensors)
    if damage == "missing":
        del tensors["rng.torch"]
    else:
        tensors["rng.torch"] = tensors["rng.torch"].float()
    with pytest.raises(CheckpointError, match="rng.torch" if damage == "missing" else "does not restore"):
        make_trainer(settings).restore(tensors, checkpoint.state)


def test_newest_readable_checkpoint_skips_truncated_and_foreign_files(tmp_path, settings, caplog):
    trainer = make_trainer(settings)
    for step in (1, 2, 3):
        trainer.step = step
        save(trainer, tmp_path, generation=step)
    newest = tmp_path / "ckpt-000000003.safetensors"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) - 100])  # a torn write (without atomic_write)
    (tmp_path / "ckpt-000000004.safetensors").write_bytes(b"\x80\x04\x95" + b"\0" * 64)  # a pickle by its looks
    with caplog.at_level(logging.WARNING, logger="azgo.learner.checkpoint"):
        checkpoint = newest_checkpoint(tmp_path)
    assert checkpoint is not None and checkpoint.step == 2 and checkpoint.state["generation"] == 2
    skipped = [r.getMessage() for r in caplog.records if "skipping unreadable checkpoint" in r.getMessage()]
    assert len(skipped) == 2 and "ckpt-000000003" in skipped[1]
    assert newest_checkpoint(tmp_path / "none") is None


def test_prune_keeps_the_newest_and_partial_writes_are_removed(tmp_path, settings):
    trainer = make_trainer(settings)
    for step in (5, 1, 12, 7, 30):
        trainer.step = step
        save(trainer, tmp_path)
    (tmp_path / ".ckpt-000000031.safetensors.abc.tmp").write_bytes(b"partial")
    removed = prune_checkpoints(tmp_path, keep=3)
    assert sorted(p.name for p in removed) == ["ckpt-000000001.safetensors", "ckpt-000000005.safetensors"]
    assert [p.name for p in checkpoint_files(tmp_path)] == [
        "ckpt-000000030.safetensors", "ckpt-000000012.safetensors", "ckpt-000000007.safetensors"]
    assert [p.name for p in remove_partial_writes(tmp_path)] == [".ckpt-000000031.safetensors.abc.tmp"]
    assert not list(tmp_path.glob("*.tmp"))


def test_checkpoint_is_plain_safetensors_with_json_metadata(tmp_path, settings):
    trainer = make_trainer(settings)
    path = save(trainer, tmp_path, generation=0, cursor=-1)
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])  # safetensors: length, JSON header, raw tensor bytes
    assert data[:2] != b"PK" and data[:1] != b"\x80"  # neither torch.save's zip nor a pickle
    state = json.loads(header["__metadata__"]["state"])
    assert state["step"] == 0 and state["optimizer"]["name"] == "SGD" and "bit_generator" in state["numpy_rng"]
    with safetensors.safe_open(str(path), framework="pt") as f:
        names = set(f.keys())
        assert f.get_tensor("rng.torch").dtype == torch.uint8
    assert {n for n in names if n.startswith("net.")} == {f"net.{k}" for k in trainer.net.state_dict()}
    assert names <= {f"net.{k}" for k in trainer.net.state_dict()} | {"rng.torch"}  # no optimiser state before a step
    source = "\n".join(p.read_text() for p in Path(__import__("azgo_learner").__file__).parent.glob("*.py"))
    forbidden = re.compile(r"import pickle|pickle\.(load|dump)|(?<!safetensors\.)torch\.(save|load)\(|allow_pickle")
    assert not forbidden.search(source), forbidden.search(source)


# --------------------------------------------------------------------------- the window


class FakeStore:
    """Stored batches as the broker's GetSamples serves them (``page`` batches per reply)."""

    def __init__(self, blobs: list[bytes], positions: list[int], page: int = 2):
        self.blobs, self.positions, self.page = blobs, positions, page
        self.requests: list[P.GetSamples] = []

    def __call__(self, request: P.GetSamples) -> Reply:
        self.requests.append(request)
        seqs = [s for s in range(len(self.blobs)) if s > request.after][: self.page]
        batches = [P.StoredBatch(seq=s, games=1, positions=self.positions[s]) for s in seqs]
        more = bool(seqs) and seqs[-1] < len(self.blobs) - 1
        message = P.Samples(batches=batches, more=more, total_positions=sum(self.positions), total_games=len(self.blobs),
                            last_seq=len(self.blobs) - 1)
        return Reply(message, [self.blobs[s] for s in seqs], 0)


def test_window_pages_through_batches_skips_a_bad_one_and_counts_once(settings, games, caplog):
    blobs = [encode_batch([g]) for g in games[:3]] + [b"\x04\x22\x4d\x18 not lz4"] + [encode_batch([g]) for g in games[3:5]]
    store = FakeStore(blobs, [1] * len(blobs))
    targets = [PositionSampler([g], history=2).total_added for g in games[:5]]
    feed = WindowFeed(PositionSampler(history=2, window=10_000), request_window=500)
    with caplog.at_level(logging.ERROR, logger="azgo.learner.window"):
        assert feed.pull(store) == sum(targets)
    assert feed.cursor == 5 and feed.skipped == 1 and len(feed.sampler.games) == 5
    assert [r.after for r in store.requests] == [-1, 1, 3]
    assert any("seq 3" in r.getMessage() for r in caplog.records)
    assert feed.pull(store) == 0 and store.requests[-1].after == 5

    # a restarted learner refills its window from the start, counting only what came after its checkpoint
    resumed = WindowFeed(PositionSampler(history=2, window=10_000), request_window=500, counted_through=2)
    assert resumed.pull(store) == sum(targets[3:]) and len(resumed.sampler.games) == 5 and resumed.counted_cursor == 5


def test_window_starts_over_when_the_store_lost_its_data(games):
    feed = WindowFeed(PositionSampler(history=2), request_window=100, counted_through=40)
    store = FakeStore([encode_batch([g]) for g in games[:2]], [1, 1])
    assert feed.pull(store) == sum(PositionSampler([g], history=2).total_added for g in games[:2])
    assert feed.counted_through == -1 and feed.cursor == 1


def test_moves_window_covers_the_policy_targets():
    assert moves_window(1000, 0.25) == 4000 and moves_window(1000, 1.0) == 1000 and moves_window(10, 0.0) == 200


def test_the_window_keeps_the_health_of_its_games_and_the_report_carries_it(tmp_path, settings, games):
    """Played games through the window into a report that the protocol accepts, with the same figures."""
    from azgo_core.health import HealthWindow
    from azgo_learner.report import Reporter

    health = HealthWindow(settings.board.size, resign_at=settings.search.resign_threshold)
    blobs = [encode_batch([g]) for g in games] + [b"\x04\x22\x4d\x18 not lz4"]
    feed = WindowFeed(PositionSampler(history=2, window=10_000), request_window=500, health=health)
    feed.pull(FakeStore(blobs, [1] * len(blobs)))
    assert health.window().games == len(games)  # the bad blob counts for nothing
    black = sum(g.winner == 1 for g in games) / sum(g.winner in (1, 2) for g in games)
    assert health.window().black_win_share == pytest.approx(black)
    reporter = Reporter(tmp_path, tensorboard=False)
    figures = reporter.figures(step=1, generation=0, samples_trained=16, positions_seen=40, waiting=False,
                               window_positions=40, samples_per_position=0.4, positions_written_off=0.0, health=health)
    message = P.LearnerReport.model_validate(P.LearnerReport.model_validate(figures.message().model_dump()).model_dump())
    assert message.health.games == len(games) and message.health.black_win_share == pytest.approx(black)
    assert [h.generation for h in message.health_by_generation] == [0]
    assert message.health.mean_moves == pytest.approx(np.mean([g.num_moves for g in games]))
    reporter.write(figures)
    row = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["health"]["games"] == len(games) and row["health_warnings"] == []
