"""Small parts of the self-play worker: rate window, worker ids and their folder lock, and the
checks a fetched model passes before it is played."""

from __future__ import annotations

import hashlib
import logging

import pytest
from procs import tiny_config

from azgo_core.config import load_settings
from azgo_core.model import AZNet, ModelFileError, resolve_device, serialize_model
from azgo_core.protocol import BatchHeader, ModelInfo
from azgo_selfplay.identity import MAX_WORKER_ID_LEN, WorkerIdInUse, claim_worker_dir, resolve_worker_id, sanitize_worker_id
from azgo_selfplay.models import verify_model
from azgo_selfplay.outbox import Batch
from azgo_selfplay.rates import RateWindow
from azgo_selfplay.worker import SelfPlayWorker


def test_rates_over_a_sliding_window():
    w = RateWindow(("games", "positions"), window=10.0)
    assert w.rates() == {"games": 0.0, "positions": 0.0}
    w.add(0.0, games=0, positions=0)
    w.add(5.0, games=10, positions=200)
    assert w.rates() == {"games": 2.0, "positions": 40.0}
    w.add(10.0, games=20, positions=400)
    w.add(20.0, games=20, positions=400)  # nothing for 10 s: the window forgets the busy start
    assert w.rates() == {"games": 0.0, "positions": 0.0}
    w.add(25.0, games=30, positions=400)
    assert w.rates()["games"] == pytest.approx(10 / 15)  # baseline: the last sample at or before t=15


def test_rates_refuse_bad_samples():
    w = RateWindow(("games",))
    w.add(5.0, games=1)
    with pytest.raises(ValueError, match="backwards"):
        w.add(4.0, games=2)
    with pytest.raises(ValueError, match="missing"):
        w.add(6.0)
    with pytest.raises(ValueError, match="window"):
        RateWindow(window=0)


def test_worker_ids(monkeypatch):
    assert sanitize_worker_id("gpu1.example.org") == "gpu1.example.org"
    assert sanitize_worker_id(" my host/ä 2 ") == "my-host-2"
    assert sanitize_worker_id("///") == "worker"
    assert len(sanitize_worker_id("x" * 500)) == MAX_WORKER_ID_LEN
    monkeypatch.setenv("AZGO_WORKER_ID", "from env")
    assert resolve_worker_id() == "from-env"
    assert resolve_worker_id("given") == "given"
    monkeypatch.delenv("AZGO_WORKER_ID")
    assert resolve_worker_id()  # the host name, never empty


def test_one_process_per_worker_folder(tmp_path):
    lock = claim_worker_dir(tmp_path / "w1")
    with pytest.raises(WorkerIdInUse, match="w1"):
        claim_worker_dir(tmp_path / "w1")
    other = claim_worker_dir(tmp_path / "w2")
    lock.close()
    claim_worker_dir(tmp_path / "w1").close()  # free again once the holder is gone
    other.close()


@pytest.fixture(scope="module")
def model_file():
    settings = load_settings(None, board={"size": 5}, model={"blocks": 1, "channels": 8, "value_hidden": 8, "history": 2})
    blob = serialize_model(AZNet(settings.net_config()), generation=3)
    info = ModelInfo(generation=3, sha256=hashlib.sha256(blob).hexdigest(), size=len(blob))
    return info, blob


def test_verified_model_loads(model_file):
    info, blob = model_file
    net, meta = verify_model(info, blob, 5, history=2)
    assert meta.generation == 3 and net.config.board_size == 5


@pytest.mark.parametrize("damage, expect", [
    (lambda info, blob: (info, blob[:-10]), "sha256"),
    (lambda info, blob: (info.model_copy(update={"sha256": "0" * 64}), blob), "sha256"),
    (lambda info, blob: (info.model_copy(update={"generation": 4}), blob), "generation 3"),
])
def test_model_mismatch_is_refused(model_file, damage, expect):
    info, blob = damage(*model_file)
    with pytest.raises(ModelFileError, match=expect):
        verify_model(info, blob, 5)


def test_model_for_another_board_or_history_is_refused(model_file):
    info, blob = model_file
    with pytest.raises(ModelFileError, match="expected 9x9"):
        verify_model(info, blob, 9)
    with pytest.raises(ModelFileError, match="model.history"):
        verify_model(info, blob, 5, history=8)


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")


def test_full_outbox_pauses_play(tmp_path, caplog):
    """No broker listening: the worker may play on, but not past ``outbox_cap`` batches on disk."""
    worker = SelfPlayWorker(load_settings(tiny_config(tmp_path)), worker_id="w1", outbox_cap=2)
    try:
        worker.runner = object()  # a model is loaded
        assert worker._can_play()
        for n in range(2):
            worker.outbox.put(Batch(BatchHeader(batch_id=f"w1-{n}", worker_id="w1", games=1, positions=3,
                                                generations=[0]), b"x"))
        with caplog.at_level(logging.INFO, logger="azgo.selfplay"):
            assert not worker._can_play()
            assert "outbox full (2 batches)" in caplog.text
            worker.outbox.ack("w1-0")
            assert worker._can_play()
            assert "self-play resumes" in caplog.text
    finally:
        worker.link.close()
        worker._lock.close()
