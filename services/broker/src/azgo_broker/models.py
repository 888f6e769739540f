"""The model registry: every published generation, on disk, and which one is current.

On disk (``data_dir/models/``), per generation g (``generation_id(g)`` = ``000012``)::

    000012.safetensors   the model file exactly as the learner published it
    000012.json          {"model": ModelInfo fields, "published": unix time}

The safetensors file is written first and the JSON last, both atomically (temp file, fsync,
rename), so the JSON's presence is the commit point: a crash leaves either a whole
generation or none. The registry is rebuilt from the JSON files at start; the temp files
(``.<name>.<random>.tmp``) an interrupted write left behind are deleted (logged at INFO) and
an unreadable or inconsistent generation is logged and skipped.

The current generation is the highest one. A publish must be above it; publishing the
current generation again with the same sha256 is an idempotent retry (the learner resends
after a lost ack).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from azgo_core.files import atomic_write
from azgo_core.model import ModelFileError, load_model
from azgo_core.protocol import ErrorCode, ModelInfo, generation_id

from .store import os_error_text

log = logging.getLogger("azgo.broker.models")

INFO_RE = re.compile(r"^(\d{6,})\.json$")
TEMP_RE = re.compile(r"^\..+\.tmp$")
"""The temp files of ``atomic_write`` (``.000012.json.k3j9x.tmp``): never a committed file."""


class PublishRefused(ValueError):
    """A publish the registry refuses; ``code`` is the ``ErrorCode`` for the reply."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Published:
    info: ModelInfo
    published: float
    """Unix time the broker stored it."""


class ModelRegistry:
    """Published generations in ``directory``; the current model's bytes are kept in memory."""

    def __init__(self, directory: str | os.PathLike, board_size: int):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.board_size = board_size
        self.generations: dict[int, Published] = {}
        self._current_bytes: bytes | None = None
        self._remove_partial_writes()
        self._reload()

    # --- queries --------------------------------------------------------------------------
    @property
    def current(self) -> ModelInfo | None:
        if not self.generations:
            return None
        return self.generations[max(self.generations)].info

    @property
    def current_generation(self) -> int:
        """The current generation, -1 when none is published."""
        return max(self.generations) if self.generations else -1

    def __contains__(self, generation: int) -> bool:
        return generation in self.generations

    def published_at(self, generation: int) -> float | None:
        p = self.generations.get(generation)
        return p.published if p else None

    def get(self, generation: int | None = None) -> tuple[ModelInfo, bytes] | None:
        """(info, file bytes) of ``generation`` (None: the current one), or None when not published."""
        if generation is None:
            generation = self.current_generation
        published = self.generations.get(generation)
        if published is None:
            return None
        if generation == self.current_generation and self._current_bytes is not None:
            return published.info, self._current_bytes
        return published.info, self._path(generation, "safetensors").read_bytes()

    # --- loading --------------------------------------------------------------------------
    def _path(self, generation: int, suffix: str) -> Path:
        return self.dir / f"{generation_id(generation)}.{suffix}"

    def _remove_partial_writes(self) -> None:
        """Delete the temp files of writes a crash interrupted (the renamed files are the committed ones)."""
        for path in sorted(self.dir.iterdir()):
            if not (TEMP_RE.match(path.name) and path.is_file()):
                continue
            try:
                path.unlink()
            except OSError as e:  # harmless where it is: never read, only untidy
                log.warning("model registry: cannot remove %s, left by an interrupted write: %s", path, e)
                continue
            log.info("model registry: removed %s, left by an interrupted write", path.name)

    def _reload(self) -> None:
        """Rebuild the registry from the JSON files, skipping (and logging) unreadable generations."""
        for path in sorted(self.dir.iterdir()):
            m = INFO_RE.match(path.name)
            if not m:
                continue
            try:
                published = self._read_generation(int(m.group(1)))
            except (OSError, ValueError, KeyError, TypeError) as e:  # a damaged or hand-edited generation
                log.error("model registry: skipping generation %s: %s: %s", m.group(1), type(e).__name__, e)
                continue
            self.generations[published.info.generation] = published
        current = self.current_generation
        if current >= 0:
            self._current_bytes = self._path(current, "safetensors").read_bytes()

    def _read_generation(self, generation: int) -> Published:
        data = json.loads(self._path(generation, "json").read_text())
        info = ModelInfo.model_validate(data["model"])
        if info.generation != generation:
            raise ValueError(f"{generation_id(generation)}.json describes generation {info.generation}")
        blob = self._path(generation, "safetensors").read_bytes()
        digest = hashlib.sha256(blob).hexdigest()
        if digest != info.sha256:
            raise ValueError(f"model file sha256 {digest} is not the recorded {info.sha256}")
        return Published(info, float(data["published"]))

    # --- publishing -----------------------------------------------------------------------
    def publish(self, generation: int, sha256: str, blob: bytes, now: float | None = None) -> tuple[ModelInfo, bool]:
        """Validate and store a new generation; returns (info, new). Raises ``PublishRefused``.

        ``new`` is False for an idempotent retry of the current generation (nothing written).
        """
        current = self.current_generation
        if generation <= current:
            known = self.generations.get(generation)
            if known is not None and known.info.sha256 == sha256:
                return known.info, False
            raise PublishRefused(ErrorCode.STALE_GENERATION,
                                 f"generation {generation} is not above the current generation {current}")
        info = self._validate(generation, sha256, blob)
        self._store(info, blob, time.time() if now is None else now)
        return info, True

    def _validate(self, generation: int, sha256: str, blob: bytes) -> ModelInfo:
        try:
            _, meta = load_model(blob, expected_board_size=self.board_size, expected_sha256=sha256)
        except ModelFileError as e:
            raise PublishRefused(ErrorCode.BAD_MODEL, f"model file refused ({type(e).__name__}): {e}") from None
        if meta.generation != generation:
            raise PublishRefused(ErrorCode.BAD_MODEL,
                                 f"model file says generation {meta.generation}, the publish says {generation}")
        return ModelInfo(generation=generation, sha256=meta.file_sha256, size=len(blob),
                         parent_generation=meta.parent_generation, training_steps=meta.training_steps,
                         samples_seen=meta.samples_seen, created=meta.created)

    def _store(self, info: ModelInfo, blob: bytes, now: float) -> None:
        """Write the file, then its JSON (the commit point), both atomically; PublishRefused(STORAGE) if the disk refuses.

        A model file without its JSON (the JSON write failed) is not a generation: a retry overwrites it.
        """
        try:
            atomic_write(self._path(info.generation, "safetensors"), bytes(blob))
            record = {"model": info.model_dump(mode="json"), "published": now}
            atomic_write(self._path(info.generation, "json"), json.dumps(record, indent=1).encode())
        except OSError as e:
            text = f"generation {generation_id(info.generation)} not stored: {os_error_text(e)}"
            log.error("model registry: %s", text)
            raise PublishRefused(ErrorCode.STORAGE, text) from e
        self.generations[info.generation] = Published(info, now)
        self._current_bytes = bytes(blob)
        log.info("model registry: published generation %s (sha256 %s, %d bytes)",
                 generation_id(info.generation), info.sha256[:12], info.size)
