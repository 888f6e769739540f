"""Where a worker's network runs, and the checks every fetched model file passes before it plays.

A model arrives as ``ModelData(model=ModelInfo) + blob``. Before a single move is played with
it, ``verify_model`` checks that sha256(blob) is the digest the broker announced and that
``load_model`` accepts it for our board size with that digest (format, tensor payload digest,
architecture); any mismatch raises ``ModelFileError`` and the worker keeps its old model.
"""

from __future__ import annotations

import hashlib

import torch

from azgo_core.model import AZNet, CorruptModelError, ModelMeta, load_model
from azgo_core.protocol import ModelInfo


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Inference precision: bf16 on GPUs that support it, else fp16; float32 (None) on the CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def gpu_name(device: torch.device) -> str:
    """The GPU's name for the hello message ("" on the CPU)."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else ""


def verify_model(info: ModelInfo, blob: bytes, board_size: int, history: int | None = None) -> tuple[AZNet, ModelMeta]:
    """Load a fetched model file after checking it against ``info``; raises ``ModelFileError``.

    ``history``: the positions in the input planes our search builds (``model.history``); a net
    built for another count could not read them.
    """
    digest = hashlib.sha256(blob).hexdigest()
    if digest != info.sha256:
        raise CorruptModelError(f"model {info.generation}: received file has sha256 {digest}, "
                                f"the broker announced {info.sha256} ({len(blob)} of {info.size} bytes)")
    net, meta = load_model(blob, board_size, expected_sha256=info.sha256)
    if meta.generation != info.generation:
        raise CorruptModelError(f"model file says generation {meta.generation}, the broker announced {info.generation}")
    if history is not None and meta.config.history != history:
        raise CorruptModelError(f"model {info.generation} reads {meta.config.history} past positions, "
                                f"this worker's search builds {history} (model.history)")
    return net, meta
