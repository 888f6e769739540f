"""Learner checkpoints on disk: one safetensors file each, no pickle.

``<data_dir>/checkpoints/ckpt-<step:09d>.safetensors`` (names sort by training step), written
with ``atomic_write`` so a crash leaves the previous file or the new one, never a part:

    tensors                          (what ``Trainer.checkpoint_parts`` gives)
        net.<name>                   the network's state_dict (weights, batch-norm statistics)
        opt.<i>.<name>               optimiser state of parameter i (SGD: momentum_buffer;
                                     AdamW: step, exp_avg, exp_avg_sq)
        rng.torch                    torch CPU generator state, uint8 [n]
        rng.cuda.<d>                 CUDA generator state of device d, when there is one
    metadata (safetensors header, str -> str)
        format, format_version       ``FORMAT_TAG`` and ``FORMAT_VERSION``
        state                        JSON: ``Checkpoint.state`` (step, generation, cursor,
                                     sample-ratio counters, optimiser and schedule data,
                                     numpy bit-generator state, architecture)
        settings                     the resolved config (YAML) the learner ran with

Loading never executes anything: safetensors holds raw tensors and the rest is JSON.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from azgo_core.files import atomic_write

log = logging.getLogger("azgo.learner.checkpoint")

FORMAT_TAG = "azgo-learner-checkpoint"
FORMAT_VERSION = 1
NAME = re.compile(r"^ckpt-(\d{9})\.safetensors$")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


@dataclass
class Checkpoint:
    """One checkpoint: its tensors (on the CPU), its JSON state and the config it ran with."""

    tensors: dict[str, torch.Tensor]
    state: dict
    settings: str = ""
    path: Path | None = field(default=None, compare=False)

    @property
    def step(self) -> int:
        return int(self.state["step"])


def checkpoint_path(directory: Path, step: int) -> Path:
    return Path(directory) / f"ckpt-{step:09d}.safetensors"


def write_checkpoint(directory: str | Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` atomically as ``ckpt-<step>.safetensors`` in ``directory``; return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in checkpoint.tensors.items()}
    metadata = {
        "format": FORMAT_TAG,
        "format_version": str(FORMAT_VERSION),
        "state": json.dumps(checkpoint.state, allow_nan=False),
        "settings": checkpoint.settings,
    }
    path = checkpoint_path(directory, checkpoint.step)
    atomic_write(path, safetensors.torch.save(tensors, metadata=metadata))
    return path


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read and check a checkpoint file; raises ``CheckpointError`` (truncated, corrupt, foreign)."""
    path = Path(path)
    try:
        with safetensors.safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error type for truncated or corrupt files
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    if metadata.get("format") != FORMAT_TAG:
        raise CheckpointError(f"{path}: not a learner checkpoint (format {metadata.get('format')!r})")
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: checkpoint format version {metadata.get('format_version')!r}, "
                              f"this learner reads {FORMAT_VERSION}")
    try:
        state = json.loads(metadata.get("state", ""))
        int(state["step"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: bad 'state' metadata ({exc!r})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: 'state' metadata is not a JSON object")
    return Checkpoint(tensors=tensors, state=state, settings=metadata.get("settings", ""), path=path)


def checkpoint_files(directory: str | Path) -> list[Path]:
    """Checkpoint files in ``directory``, newest (highest step) first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    files = [p for p in directory.iterdir() if NAME.match(p.name)]
    return sorted(files, key=lambda p: p.name, reverse=True)


def newest_checkpoint(directory: str | Path) -> Checkpoint | None:
    """The newest checkpoint that reads back whole; unreadable ones are logged and skipped."""
    for path in checkpoint_files(directory):
        try:
            return read_checkpoint(path)
        except CheckpointError as exc:
            log.warning("skipping unreadable checkpoint: %s", exc)
    return None


def prune_checkpoints(directory: str | Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest checkpoints; returns the deleted paths."""
    removed = []
    for path in checkpoint_files(directory)[keep:]:
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def remove_partial_writes(directory: str | Path) -> list[Path]:
    """Delete temp files an interrupted ``atomic_write`` left behind (call when nothing is writing)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    partial = [p for p in directory.iterdir() if p.name.startswith(".ckpt-") and p.name.endswith(".tmp")]
    for path in partial:
        path.unlink(missing_ok=True)
    return partial
