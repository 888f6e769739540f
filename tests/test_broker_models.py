"""The broker's model registry: publish, reload, stale and idempotent publishes, refused files."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest
from broker_helpers import model_blob, tiny_settings

from azgo_broker.models import ModelRegistry, PublishRefused
from azgo_core.protocol import ErrorCode


@pytest.fixture(scope="module")
def settings():
    return tiny_settings()


def test_publish_then_reload(tmp_path, settings):
    reg = ModelRegistry(tmp_path, 5)
    assert reg.current is None and reg.current_generation == -1 and reg.get() is None
    blob0, sha0 = model_blob(settings, 0)
    blob1, sha1 = model_blob(settings, 1, parent_generation=0, training_steps=40, samples_seen=1280)
    info0, new0 = reg.publish(0, sha0, blob0, now=100.0)
    info1, new1 = reg.publish(1, sha1, blob1, now=200.0)
    assert new0 and new1
    assert (info1.generation, info1.sha256, info1.size, info1.parent_generation) == (1, sha1, len(blob1), 0)
    assert (info1.training_steps, info1.samples_seen) == (40, 1280)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000000.json", "000000.safetensors",
                                                          "000001.json", "000001.safetensors"]

    again = ModelRegistry(tmp_path, 5)
    assert again.current == info1
    assert again.get() == (info1, blob1)
    assert again.get(0) == (info0, blob0)
    assert again.get(7) is None
    assert again.published_at(0) == 100.0 and 1 in again and 2 not in again


def test_stale_generation_is_refused(tmp_path, settings):
    reg = ModelRegistry(tmp_path, 5)
    blob3, sha3 = model_blob(settings, 3)
    reg.publish(3, sha3, blob3)
    blob2, sha2 = model_blob(settings, 2)
    with pytest.raises(PublishRefused, match="generation 2 is not above the current generation 3") as e:
        reg.publish(2, sha2, blob2)
    assert e.value.code == ErrorCode.STALE_GENERATION
    other, other_sha = model_blob(settings, 3)  # same generation, different weights
    with pytest.raises(PublishRefused) as e:
        reg.publish(3, other_sha, other)
    assert e.value.code == ErrorCode.STALE_GENERATION
    assert reg.get() == (reg.current, blob3)


def test_republishing_the_same_file_is_idempotent(tmp_path, settings):
    reg = ModelRegistry(tmp_path, 5)
    blob, sha = model_blob(settings, 0)
    info, new = reg.publish(0, sha, blob, now=1.0)
    again, new_again = reg.publish(0, sha, blob, now=2.0)
    assert new and not new_again and again == info
    assert reg.published_at(0) == 1.0  # nothing rewritten


def test_refused_files_name_the_problem_and_store_nothing(tmp_path, settings):
    reg = ModelRegistry(tmp_path, 5)
    blob, sha = model_blob(settings, 0)
    flipped = bytearray(blob)
    flipped[-5] ^= 0xFF
    cases = [
        (bytes(flipped), hashlib.sha256(bytes(flipped)).hexdigest(), "CorruptModelError"),  # payload hash
        (blob, "0" * 64, "sha256"),  # not the announced file
        (blob[: len(blob) // 2], hashlib.sha256(blob[: len(blob) // 2]).hexdigest(), "TruncatedModelError"),
        (b"\x80\x04pickle", hashlib.sha256(b"\x80\x04pickle").hexdigest(), "pickle"),
    ]
    for data, digest, words in cases:
        with pytest.raises(PublishRefused, match=words) as e:
            reg.publish(0, digest, data)
        assert e.value.code == ErrorCode.BAD_MODEL
    nine = tiny_settings().model_copy(update={"board": tiny_settings().board.model_copy(update={"size": 9})})
    blob9, sha9 = model_blob(nine, 0)
    with pytest.raises(PublishRefused, match="9x9, expected 5x5"):
        reg.publish(0, sha9, blob9)
    with pytest.raises(PublishRefused, match="model file says generation 0, the publish says 4"):
        reg.publish(4, sha, blob)
    assert reg.current is None and list(tmp_path.iterdir()) == []


def test_reload_skips_unreadable_generations_and_temp_files(tmp_path, settings, caplog):
    reg = ModelRegistry(tmp_path, 5)
    for g in (0, 1):
        blob, sha = model_blob(settings, g)
        reg.publish(g, sha, blob)
    (tmp_path / "000001.safetensors").write_bytes(b"damaged")  # the file no longer matches its sha256
    (tmp_path / ".000002.json.abc.tmp").write_text("{half")  # a crash mid-publish
    (tmp_path / "000003.json").write_text(json.dumps({"model": {"generation": 3}}))
    again = ModelRegistry(tmp_path, 5)
    assert sorted(again.generations) == [0] and again.current_generation == 0
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "skipping generation 000001" in messages and "skipping generation 000003" in messages


def test_start_removes_the_temp_files_of_interrupted_writes(tmp_path, settings, caplog):
    reg = ModelRegistry(tmp_path, 5)
    blob, sha = model_blob(settings, 0)
    reg.publish(0, sha, blob)
    (tmp_path / ".000001.safetensors.x1y2z3.tmp").write_bytes(blob[:100])  # a crash mid-publish
    (tmp_path / ".000000.json.abc.tmp").write_text("{half")
    (tmp_path / "notes.tmp").write_text("not ours: no leading dot")
    with caplog.at_level(logging.INFO, logger="azgo.broker.models"):
        again = ModelRegistry(tmp_path, 5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000000.json", "000000.safetensors", "notes.tmp"]
    assert again.current_generation == 0 and again.get() == (reg.current, blob)
    removed = sorted(r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "removed" in r.getMessage())
    assert len(removed) == 2 and ".000000.json.abc.tmp" in removed[0] and ".000001.safetensors.x1y2z3.tmp" in removed[1]
