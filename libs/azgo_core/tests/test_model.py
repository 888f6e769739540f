"""Tests for azgo_core.model: network shapes, the safetensors file format and its refusals."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest
import safetensors.torch
import torch

from azgo_core.files import file_sha256
from azgo_core.model import (
    AZNet,
    CorruptModelError,
    ModelFileError,
    NetConfig,
    NotAModelError,
    TruncatedModelError,
    WrongBoardSizeError,
    count_parameters,
    load_model,
    make_evaluator,
    save_model,
    serialize_model,
    tensor_payload_sha256,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = dict(history=2, blocks=1, channels=8, value_hidden=8)


def tiny_net(size: int = 9, seed: int = 0) -> AZNet:
    torch.manual_seed(seed)
    net = AZNet(NetConfig(board_size=size, **TINY))
    # non-trivial batch-norm statistics, so a load that dropped them would show
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def random_planes(cfg: NetConfig, batch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, size=(batch, cfg.in_planes, cfg.board_size, cfg.board_size), dtype=np.uint8)


# --------------------------------------------------------------------------- network


@pytest.mark.parametrize("size", [5, 9, 19])
def test_forward_shapes(size):
    net = tiny_net(size)
    x = torch.from_numpy(random_planes(net.config, 3)).float()
    logits, value = net(x)
    assert logits.shape == (3, size * size + 1)
    assert value.shape == (3,)
    assert bool(((value >= -1) & (value <= 1)).all())


def test_default_config_is_the_small_9x9_net():
    cfg = NetConfig()
    assert (cfg.board_size, cfg.history, cfg.blocks, cfg.channels) == (9, 8, 4, 48)
    assert cfg.in_planes == 17 and cfg.num_actions == 82
    net = AZNet()
    logits, value = net(torch.zeros(2, 17, 9, 9))
    assert logits.shape == (2, 82) and value.shape == (2,)
    assert 100_000 < count_parameters(net) < 400_000


def test_keyword_construction_and_bad_config():
    assert AZNet(board_size=5, blocks=0, channels=4).config == NetConfig(board_size=5, blocks=0, channels=4)
    with pytest.raises(ValueError, match="channels"):
        NetConfig(channels=0)
    with pytest.raises(ValueError, match="board size"):
        NetConfig(board_size=4)


def test_forward_refuses_wrong_input_shape():
    net = tiny_net(9)
    with pytest.raises(ValueError, match=r"\[B, 5, 9, 9\]"):
        net(torch.zeros(1, 5, 7, 7))


def test_count_parameters_matches_the_architecture():
    n, c, f, h, blocks = 5, 5, 8, 8, 1  # history 2 -> 5 planes
    net = AZNet(NetConfig(board_size=n, **TINY, aux_heads=True, global_pooling=True))
    stem = c * f * 9 + 2 * f
    tower = blocks * 2 * (f * f * 9 + 2 * f)
    policy = f * 2 + 2 * 2 + (2 * n * n) * (n * n + 1) + (n * n + 1)
    value = f * 1 + 2 * 1 + (n * n) * h + h + h + 1
    plain = AZNet(NetConfig(board_size=n, **TINY, aux_heads=False, global_pooling=False))
    assert count_parameters(plain) == stem + tower + policy + value
    ownership, score, opponent = f + 1, h + 1, (2 * n * n) * (n * n + 1) + (n * n + 1)
    assert count_parameters(net) == stem + tower + policy + value + ownership + score + opponent
    g = 8  # pooled channels: max(8, F/4)
    pooled = AZNet(NetConfig(board_size=n, **{**TINY, "blocks": 2}, aux_heads=False, global_pooling=True))
    pooling = f * g * 9 + 2 * g + (2 * g) * f + f
    assert count_parameters(pooled) == stem + 2 * tower + pooling + policy + value


def test_netconfig_json_round_trip_and_refusals():
    cfg = NetConfig(board_size=7, history=4, blocks=2, channels=16, value_hidden=32)
    assert NetConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        NetConfig.from_json(json.dumps({**json.loads(cfg.to_json()), "dropout": 0.1}))
    with pytest.raises(ValueError, match="missing"):
        NetConfig.from_json(json.dumps({"board_size": 9}))
    with pytest.raises(ValueError, match="JSON"):
        NetConfig.from_json("{not json")


def test_channels_last_gives_the_same_outputs():
    net = tiny_net(9)
    x = torch.from_numpy(random_planes(net.config, 4)).float()
    ref_logits, ref_value = net(x)
    net_cl = tiny_net(9).to(memory_format=torch.channels_last)
    logits, value = net_cl(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(value, ref_value, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- evaluator


def test_evaluator_shapes_dtypes_and_values():
    net = tiny_net(9)
    evaluate = make_evaluator(net)
    planes = random_planes(net.config, 6)
    logits, value = evaluate(planes)
    assert logits.dtype == np.float32 and logits.shape == (6, 82)
    assert value.dtype == np.float32 and value.shape == (6,)
    with torch.no_grad():
        ref_logits, ref_value = net(torch.from_numpy(planes).float())
    np.testing.assert_allclose(logits, ref_logits.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(value, ref_value.numpy(), rtol=1e-5, atol=1e-6)
    empty_logits, empty_value = evaluate(planes[:0])
    assert empty_logits.shape == (0, 82) and empty_value.shape == (0,)


def test_evaluator_uses_eval_mode_and_no_grad():
    net = tiny_net(9).train()
    evaluate = make_evaluator(net)
    assert not net.training
    planes = random_planes(net.config, 1)
    # batch-norm in eval mode: one sample gives the same answer alone or inside a batch
    alone = evaluate(planes)[0]
    batched = evaluate(np.concatenate([planes, random_planes(net.config, 5, seed=1)]))[0][:1]
    np.testing.assert_allclose(alone, batched, rtol=1e-5, atol=1e-6)
    assert all(p.grad is None for p in net.parameters())


def test_evaluator_refuses_bad_planes():
    evaluate = make_evaluator(tiny_net(9))
    with pytest.raises(TypeError, match="uint8"):
        evaluate(random_planes(NetConfig(**TINY), 2).astype(np.float32))
    with pytest.raises(ValueError, match=r"\[B, 5, 9, 9\]"):
        evaluate(np.zeros((2, 17, 9, 9), np.uint8))


# --------------------------------------------------------------------------- save / load


def test_save_load_round_trip(tmp_path):
    net = tiny_net(9, seed=3)
    path = tmp_path / "gen-000007.safetensors"
    digest = save_model(
        path, net, generation=7, parent_generation=6, training_steps=1234, samples_seen=56789, extra={"note": "hi"}
    )
    assert digest == file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind

    loaded, meta = load_model(path, expected_board_size=9)
    assert not loaded.training
    assert meta.generation == 7 and meta.parent_generation == 6
    assert meta.training_steps == 1234 and meta.samples_seen == 56789
    assert meta.config == net.config and meta.board_size == 9
    assert meta.file_sha256 == digest
    assert meta.payload_sha256 == tensor_payload_sha256(net.state_dict())
    assert meta.extra == {"note": "hi"}
    assert meta.created.endswith("+00:00")

    planes = random_planes(net.config, 5)
    a = make_evaluator(net)(planes)
    b = make_evaluator(loaded)(planes)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    for (name, t1), (_, t2) in zip(net.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(t1, t2), name


def test_load_from_bytes_and_no_parent(tmp_path):
    net = tiny_net(5)
    data = serialize_model(net, generation=0)
    loaded, meta = load_model(data)
    assert meta.generation == 0 and meta.parent_generation is None
    assert meta.file_sha256 == hashlib.sha256(data).hexdigest()
    _, meta2 = load_model(memoryview(data))
    assert meta2.payload_sha256 == meta.payload_sha256


def test_expected_file_digest_is_checked():
    data = serialize_model(tiny_net(9), generation=4)
    digest = hashlib.sha256(data).hexdigest()
    _, meta = load_model(data, expected_sha256=digest.upper())
    assert meta.generation == 4
    with pytest.raises(CorruptModelError, match="expected"):
        load_model(data, expected_sha256="0" * 64)


def test_save_replaces_existing_file(tmp_path):
    path = tmp_path / "current.safetensors"
    save_model(path, tiny_net(9, seed=1), generation=1)
    digest = save_model(path, tiny_net(9, seed=2), generation=2)
    _, meta = load_model(path)
    assert meta.generation == 2 and meta.file_sha256 == digest
    assert len(list(tmp_path.iterdir())) == 1


def test_truncated_files_are_refused(tmp_path):
    data = serialize_model(tiny_net(9), generation=1)
    (header_len,) = struct.unpack("<Q", data[:8])
    for cut in (len(data) - 1, len(data) - 100, 8 + header_len, 8 + header_len // 2, 5):
        with pytest.raises(TruncatedModelError, match="truncated|shorter|header"):
            load_model(data[:cut])
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(TruncatedModelError, match="empty"):
        load_model(empty)


def test_flipped_payload_byte_is_corrupt():
    data = bytearray(serialize_model(tiny_net(9), generation=1))
    data[-50] ^= 0x01
    with pytest.raises(CorruptModelError, match="sha256"):
        load_model(bytes(data))


def test_bad_header_json_is_corrupt():
    data = bytearray(serialize_model(tiny_net(9), generation=1))
    data[9] = ord("!")  # right after the opening brace
    with pytest.raises(CorruptModelError, match="JSON"):
        load_model(bytes(data))


def test_trailing_bytes_are_corrupt():
    data = serialize_model(tiny_net(9), generation=1)
    with pytest.raises(CorruptModelError, match="unexpected bytes"):
        load_model(data + b"\0" * 16)


def _reserialize(tensors: dict, metadata: dict) -> bytes:
    metadata = {**metadata, "sha256": tensor_payload_sha256(tensors)}  # a self-consistent hash
    return safetensors.torch.save(tensors, metadata=metadata)


def _parts(data: bytes) -> tuple[dict, dict]:
    (header_len,) = struct.unpack("<Q", data[:8])
    metadata = json.loads(data[8 : 8 + header_len])["__metadata__"]
    return safetensors.torch.load(data), metadata


def test_missing_extra_and_misshapen_tensors_are_corrupt():
    tensors, metadata = _parts(serialize_model(tiny_net(9), generation=1))
    missing = {k: v for k, v in tensors.items() if k != "policy_fc.bias"}
    with pytest.raises(CorruptModelError, match="missing.*policy_fc.bias"):
        load_model(_reserialize(missing, metadata))
    with pytest.raises(CorruptModelError, match="unexpected.*stray"):
        load_model(_reserialize({**tensors, "stray": torch.zeros(3)}, metadata))
    bigger = {**tensors, "policy_fc.bias": torch.zeros(99)}
    with pytest.raises(CorruptModelError, match="policy_fc.bias"):
        load_model(_reserialize(bigger, metadata))


def test_architecture_disagreeing_with_tensors_is_corrupt():
    tensors, metadata = _parts(serialize_model(tiny_net(9), generation=1))
    arch = json.loads(metadata["architecture"])
    metadata["architecture"] = json.dumps({**arch, "channels": 16})
    with pytest.raises(CorruptModelError, match="architecture needs"):
        load_model(_reserialize(tensors, metadata))
    metadata["architecture"] = "{oops"
    with pytest.raises(CorruptModelError, match="architecture"):
        load_model(_reserialize(tensors, metadata))


def test_wrong_board_size(tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(path, tiny_net(9), generation=1)
    with pytest.raises(WrongBoardSizeError, match="model is for 9x9, expected 7x7"):
        load_model(path, expected_board_size=7)


def test_foreign_safetensors_file_is_not_a_model():
    data = safetensors.torch.save({"weight": torch.zeros(2, 2)})
    with pytest.raises(NotAModelError, match="azgo"):
        load_model(data)


def test_torch_save_files_are_not_models(tmp_path):
    net = tiny_net(9)
    zip_path = tmp_path / "zip.pt"
    torch.save(net.state_dict(), zip_path)
    legacy_path = tmp_path / "legacy.pt"
    torch.save(net.state_dict(), legacy_path, _use_new_zipfile_serialization=False)
    with pytest.raises(NotAModelError, match="zip"):
        load_model(zip_path)
    with pytest.raises(NotAModelError, match="not a model"):
        load_model(legacy_path)


class _Exploit:
    """Unpickling this would run a shell command that creates ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickles_are_refused_without_running_them(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Exploit(str(marker)), protocol=4)  # dumps records the call, never runs it
    assert b"system" in payload
    plain = tmp_path / "evil.pkl"
    plain.write_bytes(payload)
    zipped = tmp_path / "evil.pt"  # the torch.save layout: a zip holding data.pkl
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("archive/data.pkl", payload)
    old_protocol = tmp_path / "evil0.pkl"
    old_protocol.write_bytes(pickle.dumps(_Exploit(str(marker)), protocol=0))
    for path in (plain, zipped, old_protocol):
        with pytest.raises(NotAModelError):
            load_model(path)
        with pytest.raises(NotAModelError):
            load_model(path.read_bytes())
    assert not marker.exists()


def test_random_bytes_are_not_a_model():
    rng = np.random.default_rng(0)
    for n in (64, 1000, 100_000):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        with pytest.raises(ModelFileError):
            load_model(data)
    # the most common random outcome is a huge declared header
    with pytest.raises(NotAModelError, match="header length"):
        load_model(b"\xff" * 64)


def test_every_refusal_is_a_model_file_error_and_a_value_error():
    for cls in (TruncatedModelError, CorruptModelError, WrongBoardSizeError, NotAModelError):
        assert issubclass(cls, ModelFileError) and issubclass(cls, ValueError)


def test_load_takes_paths_or_bytes_only():
    with pytest.raises(TypeError, match="path or bytes, got BytesIO"):
        load_model(io.BytesIO(b"abc"))
