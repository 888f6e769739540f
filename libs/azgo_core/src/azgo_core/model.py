"""The policy-value network, its file format and a batched evaluator.

Network (AlphaGo Zero's residual tower, scaled down)::

    x  float [B, C, N, N]          C = 2*history + 1 input planes (see ``azgo_core.features``)
    stem      conv3x3 -> BN -> ReLU                                  [B, F, N, N]
    tower     ``blocks`` x (conv3x3-BN-ReLU-conv3x3-BN + skip, ReLU)  [B, F, N, N]
    policy    conv1x1 to 2 -> BN -> ReLU -> FC                       [B, N*N+1]  logits (pass last)
    value     conv1x1 to 1 -> BN -> ReLU -> FC hidden -> ReLU -> FC -> tanh   [B]  in [-1, 1]

The value is the expected outcome for the side to move (+1 = it wins). Convolutions followed
by batch norm carry no bias (the norm's shift replaces it).

KataGo's additions (Wu 2019, "Accelerating Self-Play Learning in Go"), each behind a
``NetConfig`` flag; training only, self-play and matches call ``forward`` and never pay for
the auxiliary heads:

    global_pooling  blocks 2, 5, 8, ... (1-based) add a per-channel bias computed from the mean
                    and max of G = max(8, F/4) pooled channels, so a local pattern can see
                    whole-board facts (ko threats, who is ahead) a 3x3 tower cannot reach
    aux_heads       ownership  conv1x1 to 1 on the tower              [B, N*N]  logits of
                               "the side to move owns this point at the end"
                    score      FC from the value hidden layer          [B]  final score for
                               the side to move divided by N (komi included)
                    opponent   FC from the policy features             [B, N*N+1]  logits of
                               the opponent's reply (the move after the one to play)

A scalar score rather than KataGo's distribution over scores: the network never chooses
moves by score here (no score utility in the search), so the mean is what the auxiliary loss
needs, and a distribution would add 2*N*N outputs to a net of 0.2M parameters.

The default ``NetConfig`` (9x9, 4 blocks of 48 filters, ~0.2M parameters) is deliberately
small: it learns visibly within an hour of self-play on a laptop CPU, where a 20-block
256-filter AlphaGo Zero net would not finish one generation. Bigger nets are a config change.

Model file (safetensors; loading never executes code, never unpickles)::

    u64 little-endian header length | JSON header | raw little-endian tensor bytes

Header ``__metadata__`` holds strings only:

    format          'azgo-model'
    format_version  '1'
    generation      int; parent_generation int or '' (none)
    architecture    NetConfig JSON; board_size int (must agree with the architecture)
    sha256          SHA-256 of the tensor payload, see ``tensor_payload_sha256``
    training_steps, samples_seen   int
    created         ISO-8601 UTC time of writing
    extra.<key>     caller-supplied strings

Registries and transfers compare the SHA-256 of the *whole file* (``file_sha256``), which
``save_model`` returns; the payload hash inside the header lets ``load_model`` detect
corruption of a file on its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import safetensors.torch
import torch
from torch import nn
from torch.nn import functional as F

from azgo_core.files import atomic_write
from azgo_core.params import NetConfig

if TYPE_CHECKING:  # the search owns the evaluator's type; importing it here would load the compiled kernels
    from azgo_core.search import Evaluator

FORMAT_TAG = "azgo-model"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 16 * 1024 * 1024  # a real header is a few KB; bigger means "not a model file"

# safetensors dtype names and item sizes, both directions.
_ST_DTYPES: dict[torch.dtype, tuple[str, int]] = {
    torch.float64: ("F64", 8),
    torch.float32: ("F32", 4),
    torch.float16: ("F16", 2),
    torch.bfloat16: ("BF16", 2),
    torch.int64: ("I64", 8),
    torch.int32: ("I32", 4),
    torch.int16: ("I16", 2),
    torch.int8: ("I8", 1),
    torch.uint8: ("U8", 1),
    torch.bool: ("BOOL", 1),
}
_ST_ITEMSIZE = {name: size for name, size in _ST_DTYPES.values()}


# --------------------------------------------------------------------------- errors


class ModelFileError(ValueError):
    """A model file or byte string that cannot be loaded; subclasses say why."""


class TruncatedModelError(ModelFileError):
    """The data ends before its header says it should (or is empty)."""


class CorruptModelError(ModelFileError):
    """The data has the model layout but is damaged: bad header, hash mismatch, wrong tensors."""


class WrongBoardSizeError(ModelFileError):
    """A valid model for another board size than the caller expects."""


class NotAModelError(ModelFileError):
    """Not an azgo safetensors model at all (a pickle, a torch.save zip, random bytes, ...)."""


# --------------------------------------------------------------------------- network





class ResidualBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the input, then ReLU. [B, F, N, N] -> [B, F, N, N]."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(x + y)


class GlobalPoolingBlock(nn.Module):
    """A residual block whose middle gets a per-channel bias from pooled whole-board features
    (KataGo's global pooling). [B, F, N, N] -> [B, F, N, N].

    g = ReLU(BN(conv3x3 x))  [B, G, N, N]  ->  mean and max over the board  [B, 2G]
    -> FC -> bias [B, F] added to ReLU(BN(conv1 x)) before the second convolution.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        pooled = max(8, channels // 4)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.pool_conv = nn.Conv2d(channels, pooled, 3, padding=1, bias=False)
        self.pool_bn = nn.BatchNorm2d(pooled)
        self.pool_fc = nn.Linear(2 * pooled, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        g = F.relu(self.pool_bn(self.pool_conv(x)))
        pooled = torch.cat([g.mean(dim=(2, 3)), g.amax(dim=(2, 3))], dim=1)  # [B, 2G]
        y = y + self.pool_fc(pooled)[:, :, None, None]
        y = self.bn2(self.conv2(y))
        return F.relu(x + y)


class NetOutputs(NamedTuple):
    """Every head of ``AZNet.heads``: logits [B, N*N+1], value [B], and with ``aux_heads``
    ownership logits [B, N*N], score [B] (points for the side to move / N) and opponent-reply
    logits [B, N*N+1] (None without)."""

    logits: torch.Tensor
    value: torch.Tensor
    ownership: torch.Tensor | None = None
    score: torch.Tensor | None = None
    opponent_logits: torch.Tensor | None = None


class AZNet(nn.Module):
    """AlphaGo Zero policy-value ResNet, with KataGo's auxiliary heads and global pooling.

    ``AZNet(NetConfig(...))`` or ``AZNet(board_size=5, blocks=1, channels=16)`` (keyword
    arguments are NetConfig fields). ``forward(x float [B, C, N, N])`` returns
    ``(logits float [B, N*N+1], value float [B])``: unnormalised policy logits with pass last,
    and the value in [-1, 1] for the side to move. ``heads(x)`` returns every head
    (``NetOutputs``), for training.
    """

    def __init__(self, config: NetConfig | None = None, **overrides) -> None:
        super().__init__()
        if config is None:
            config = NetConfig(**overrides)
        elif overrides:
            raise TypeError("give either a NetConfig or NetConfig fields as keywords, not both")
        self.config = config
        n, f = config.board_size, config.channels
        self.stem = nn.Sequential(nn.Conv2d(config.in_planes, f, 3, padding=1, bias=False), nn.BatchNorm2d(f), nn.ReLU())
        pooled = set(config.pooled_blocks)
        self.tower = nn.Sequential(*(GlobalPoolingBlock(f) if i in pooled else ResidualBlock(f) for i in range(config.blocks)))
        self.policy_conv = nn.Conv2d(f, 2, 1, bias=False)
        self.policy_bn = nn.BatchNorm2d(2)
        self.policy_fc = nn.Linear(2 * n * n, config.num_actions)
        self.value_conv = nn.Conv2d(f, 1, 1, bias=False)
        self.value_bn = nn.BatchNorm2d(1)
        self.value_fc1 = nn.Linear(n * n, config.value_hidden)
        self.value_fc2 = nn.Linear(config.value_hidden, 1)
        if config.aux_heads:
            self.ownership_conv = nn.Conv2d(f, 1, 1)
            self.score_fc = nn.Linear(config.value_hidden, 1)
            self.opponent_fc = nn.Linear(2 * n * n, config.num_actions)

    def _check(self, x: torch.Tensor) -> None:
        c, n = self.config.in_planes, self.config.board_size
        if x.dim() != 4 or x.shape[1:] != (c, n, n):
            raise ValueError(f"AZNet expects input [B, {c}, {n}, {n}], got {list(x.shape)}")

    def _trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(tower output [B, F, N, N], policy features [B, 2*N*N], value hidden [B, value_hidden])."""
        self._check(x)
        h = self.tower(self.stem(x))
        p = F.relu(self.policy_bn(self.policy_conv(h))).flatten(1)  # flatten is layout-aware: fine under channels_last
        v = F.relu(self.value_bn(self.value_conv(h)))
        v = F.relu(self.value_fc1(v.flatten(1)))
        return h, p, v

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x float [B, C, N, N] -> (logits [B, N*N+1], value [B])."""
        _, p, v = self._trunk(x)
        return self.policy_fc(p), torch.tanh(self.value_fc2(v)).squeeze(1)

    def heads(self, x: torch.Tensor) -> NetOutputs:
        """x float [B, C, N, N] -> every head (``NetOutputs``); the auxiliary ones are None
        without ``aux_heads``."""
        h, p, v = self._trunk(x)
        logits, value = self.policy_fc(p), torch.tanh(self.value_fc2(v)).squeeze(1)
        if not self.config.aux_heads:
            return NetOutputs(logits, value)
        return NetOutputs(
            logits,
            value,
            ownership=self.ownership_conv(h).flatten(1),
            score=self.score_fc(v).squeeze(1),
            opponent_logits=self.opponent_fc(p),
        )


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters (batch-norm running statistics excluded)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- evaluator

def resolve_device(name: str) -> torch.device:
    """A ``device`` setting (``self_play.device``, ``learner.device``): "auto" is cuda when a GPU is
    visible, else cpu; anything else as given, refused when it names CUDA and torch sees none."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device")
    return device


def make_evaluator(net: AZNet, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> Evaluator:
    """Wrap ``net`` as ``evaluate(planes uint8 [B, C, N, N]) -> (logits f32 [B, N*N+1], value f32 [B])``.

    Moves the net to ``device`` and puts it in eval mode (the evaluator owns it: pass a copy
    if you keep training the original). ``dtype`` is the autocast dtype: default bf16 on CUDA
    (with channels_last memory format), none (float32) on CPU.
    """
    device = torch.device(device)
    net.to(device).eval()
    if dtype is None and device.type == "cuda":
        dtype = torch.bfloat16
    channels_last = device.type == "cuda"
    if channels_last:
        net.to(memory_format=torch.channels_last)
    c, n = net.config.in_planes, net.config.board_size
    a = net.config.num_actions
    # CUDA: planes go through a page-locked (pinned) buffer, so the copy to the device is a
    # non-blocking DMA; a call's .cpu() waits for its own work, so the next call (the lock
    # keeps calls from several threads apart) may reuse the buffer
    pinned: list[torch.Tensor] = []
    lock = threading.Lock() if device.type == "cuda" else contextlib.nullcontext()

    def to_device(planes: np.ndarray) -> torch.Tensor:
        host = torch.from_numpy(np.ascontiguousarray(planes))
        if device.type != "cuda":
            return host.to(device)
        if not pinned or pinned[0].shape[0] < len(planes):
            pinned[:] = [torch.empty((max(len(planes), 256), c, n, n), dtype=torch.uint8, pin_memory=True)]
        staged = pinned[0][:len(planes)]
        staged.copy_(host)
        return staged.to(device, non_blocking=True)

    def evaluate(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(planes, np.ndarray) or planes.dtype != np.uint8:
            raise TypeError(f"planes must be a uint8 numpy array, got {type(planes).__name__} {getattr(planes, 'dtype', '')}")
        if planes.ndim != 4 or planes.shape[1:] != (c, n, n):
            raise ValueError(f"planes must be [B, {c}, {n}, {n}], got {list(planes.shape)}")
        b = planes.shape[0]
        if b == 0:
            return np.zeros((0, a), np.float32), np.zeros((0,), np.float32)
        with lock, torch.inference_mode():
            x = to_device(planes).float()
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype in (torch.bfloat16, torch.float16)):
                logits, value = net(x)
            return (
                logits.float().cpu().numpy().astype(np.float32, copy=False),
                value.float().cpu().numpy().astype(np.float32, copy=False),
            )

    return evaluate


# --------------------------------------------------------------------------- save


@dataclass
class ModelMeta:
    """What a model file says about itself, plus the SHA-256 of the bytes it was loaded from."""

    generation: int
    config: NetConfig
    board_size: int
    payload_sha256: str
    file_sha256: str
    parent_generation: int | None = None
    training_steps: int = 0
    samples_seen: int = 0
    created: str = ""
    format_version: int = FORMAT_VERSION
    extra: dict[str, str] = field(default_factory=dict)


def _payload_digest(entries) -> str:
    """SHA-256 over (name, dtype, shape, bytes) of each tensor, in sorted-name order.

    Each tensor contributes ``name NUL dtype NUL d0,d1,.. NUL nbytes NUL`` then its raw
    little-endian bytes; the lengths make the encoding unambiguous.
    """
    h = hashlib.sha256()
    for name, dtype, shape, data in sorted(entries, key=lambda e: e[0]):
        h.update(f"{name}\0{dtype}\0{','.join(str(d) for d in shape)}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def tensor_payload_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """The ``sha256`` metadata value for a dict of tensors (see ``_payload_digest``)."""
    entries = []
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        entries.append((name, _ST_DTYPES[t.dtype][0], tuple(t.shape), t.reshape(-1).view(torch.uint8).numpy().tobytes()))
    return _payload_digest(entries)


def serialize_model(
    net: AZNet,
    *,
    generation: int,
    parent_generation: int | None = None,
    training_steps: int = 0,
    samples_seen: int = 0,
    extra: Mapping[str, str] | None = None,
) -> bytes:
    """The bytes ``save_model`` writes (for sending a model without touching disk)."""
    # Floating tensors are stored as float32 whatever the training precision was.
    tensors = {
        k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().contiguous() for k, v in net.state_dict().items()
    }
    config: NetConfig = net.config
    metadata = {
        "format": FORMAT_TAG,
        "format_version": str(FORMAT_VERSION),
        "generation": str(int(generation)),
        "parent_generation": "" if parent_generation is None else str(int(parent_generation)),
        "architecture": config.to_json(),
        "board_size": str(config.board_size),
        "sha256": tensor_payload_sha256(tensors),
        "training_steps": str(int(training_steps)),
        "samples_seen": str(int(samples_seen)),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    for key, value in (extra or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"extra metadata must map str to str, got {key!r}: {value!r}")
        metadata[f"extra.{key}"] = value
    return safetensors.torch.save(tensors, metadata=metadata)


def save_model(path: str | os.PathLike, net: AZNet, **stamp: Any) -> str:
    """Write ``net`` atomically to ``path`` with the metadata ``serialize_model`` takes as keywords
    (``generation``, ``parent_generation``, ``training_steps``, ``samples_seen``, ``extra``);
    return the SHA-256 of the file."""
    data = serialize_model(net, **stamp)
    atomic_write(path, data)
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- load


def _sniff_foreign(data: bytes) -> str | None:
    """Name the format of data that is clearly not safetensors, else None."""
    if data[:4] == b"PK\x03\x04":
        return "a zip archive (torch.save output?)"
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a pickle (torch.save legacy format?)"
    return None


def _parse_header(data: bytes) -> tuple[dict, int]:
    """Return (header dict, payload start offset) after format and length checks."""
    if len(data) == 0:
        raise TruncatedModelError("model data is empty")
    foreign = _sniff_foreign(data)
    if foreign:
        raise NotAModelError(f"not a model file: the data is {foreign}; only azgo safetensors models are loaded")
    if len(data) < 8:
        raise TruncatedModelError(f"model data is {len(data)} bytes, shorter than the 8-byte header length")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len == 0 or header_len > MAX_HEADER_BYTES:
        raise NotAModelError(f"not a model file: header length {header_len} is not that of a safetensors file")
    if len(data) > 8 and data[8:9] != b"{":
        raise NotAModelError("not a model file: no safetensors JSON header after the length")
    if len(data) < 8 + header_len:
        raise TruncatedModelError(f"model data is {len(data)} bytes, but its header alone needs {8 + header_len}")
    try:
        header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptModelError(f"corrupt model: header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise CorruptModelError("corrupt model: header is not a JSON object")
    return header, 8 + header_len


def _tensor_entries(header: dict, data: bytes, start: int) -> list[tuple[str, str, tuple[int, ...], bytes]]:
    """Check every tensor's dtype, shape and byte range; return (name, dtype, shape, bytes)."""
    entries, ranges = [], []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
            ok = all(isinstance(d, int) and d >= 0 for d in (*shape, begin, end)) and dtype in _ST_ITEMSIZE
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise CorruptModelError(f"corrupt model: bad header entry for tensor {name!r}")
        if (end - begin) != math.prod(shape) * _ST_ITEMSIZE[dtype]:
            raise CorruptModelError(f"corrupt model: tensor {name!r} byte range does not match its shape {list(shape)}")
        ranges.append((begin, end, name))
        entries.append((name, dtype, shape, begin, end))
    ranges.sort()
    position = 0
    for begin, end, name in ranges:
        if begin != position:
            raise CorruptModelError(f"corrupt model: tensor {name!r} overlaps or leaves a gap in the payload")
        position = end
    payload = len(data) - start
    if payload < position:
        raise TruncatedModelError(f"truncated model: payload is {payload} bytes, the header says {position}")
    if payload > position:
        raise CorruptModelError(f"corrupt model: {payload - position} unexpected bytes after the tensors")
    return [(n, d, s, data[start + b : start + e]) for n, d, s, b, e in entries]


def _meta_int(meta: Mapping[str, str], key: str, optional: bool = False) -> int | None:
    value = meta.get(key)
    if optional and value == "":
        return None
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise CorruptModelError(f"corrupt model: metadata {key!r} is {value!r}, not an integer") from None


def load_model(
    path_or_bytes: str | os.PathLike | bytes | bytearray | memoryview,
    expected_board_size: int | None = None,
    map_location: str | torch.device = "cpu",
    *,
    expected_sha256: str | None = None,
) -> tuple[AZNet, ModelMeta]:
    """Load a model file (path) or its bytes (from the wire) into an eval-mode ``AZNet``.

    ``expected_sha256``: the whole-file digest a registry announced; a mismatch is a
    ``CorruptModelError``. Raises a ``ModelFileError`` subclass naming the problem:
    ``TruncatedModelError``, ``CorruptModelError``, ``WrongBoardSizeError`` or
    ``NotAModelError``. Nothing in the data is ever executed or unpickled.
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
    elif isinstance(path_or_bytes, (str, os.PathLike)):
        data = Path(path_or_bytes).read_bytes()
    else:
        raise TypeError(f"load_model takes a path or bytes, got {type(path_or_bytes).__name__}")
    whole = hashlib.sha256(data).hexdigest()
    header, start = _parse_header(data)
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_TAG:
        raise NotAModelError(f"not an azgo model: safetensors data without format={FORMAT_TAG!r} metadata")
    version = _meta_int(meta, "format_version")
    if version != FORMAT_VERSION:
        raise CorruptModelError(f"unsupported model format version {version} (this code reads {FORMAT_VERSION})")
    entries = _tensor_entries(header, data, start)
    if expected_sha256 is not None and whole != expected_sha256.lower():
        raise CorruptModelError(f"corrupt model: file sha256 {whole} is not the expected {expected_sha256}")
    digest = _payload_digest(entries)
    if digest != meta.get("sha256"):
        raise CorruptModelError(f"corrupt model: tensor payload sha256 {digest} does not match the header's {meta.get('sha256')}")
    try:
        config = NetConfig.from_json(meta.get("architecture", ""))
    except (ValueError, TypeError) as exc:
        raise CorruptModelError(f"corrupt model: bad architecture metadata: {exc}") from None
    board_size = _meta_int(meta, "board_size")
    if board_size != config.board_size:
        raise CorruptModelError(f"corrupt model: board_size {board_size} disagrees with the architecture's {config.board_size}")
    if expected_board_size is not None and board_size != expected_board_size:
        raise WrongBoardSizeError(f"model is for {board_size}x{board_size}, expected {expected_board_size}x{expected_board_size}")

    net = AZNet(config)
    wanted = {k: (tuple(v.shape), _ST_DTYPES[v.dtype][0]) for k, v in net.state_dict().items()}
    found = {name: (shape, dtype) for name, dtype, shape, _ in entries}
    missing, unexpected = sorted(set(wanted) - set(found)), sorted(set(found) - set(wanted))
    if missing or unexpected:
        raise CorruptModelError(f"corrupt model: tensors missing {missing[:5]}, unexpected {unexpected[:5]}")
    for name, (shape, dtype) in wanted.items():
        if found[name] != (shape, dtype):
            raise CorruptModelError(
                f"corrupt model: tensor {name!r} is {found[name][1]} {list(found[name][0])}, "
                f"the architecture needs {dtype} {list(shape)}"
            )
    try:
        tensors = safetensors.torch.load(data)
    except Exception as exc:  # safetensors raises its own error type; keep ours
        raise CorruptModelError(f"corrupt model: safetensors refused the data: {exc}") from None
    net.load_state_dict(tensors, strict=True)
    net.to(map_location).eval()
    model_meta = ModelMeta(
        generation=_meta_int(meta, "generation"),
        config=config,
        board_size=board_size,
        payload_sha256=digest,
        file_sha256=whole,
        parent_generation=_meta_int(meta, "parent_generation", optional=True),
        training_steps=_meta_int(meta, "training_steps"),
        samples_seen=_meta_int(meta, "samples_seen"),
        created=str(meta.get("created", "")),
        format_version=version,
        extra={k[len("extra.") :]: v for k, v in meta.items() if k.startswith("extra.")},
    )
    return net, model_meta
