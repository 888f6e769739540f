"""Helpers for tests that talk to the broker: tiny models, self-play games and batches.

``tiny_settings()`` are the 5x5 settings of ``procs.TINY``; ``model_blob(settings, g)`` a
generation-``g`` model file and its sha256; ``play_games(settings, n, worker_id, generation)``
real self-play games (uniform evaluator: no network needed); ``batch(...)`` a ``SubmitBatch``
and its blob; ``game(...)`` a hand-written game (illegal moves, wrong sizes and the like).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from pathlib import Path

from procs import TINY

from azgo_core import protocol as P
from azgo_core.config import Settings, load_settings
from azgo_core.model import AZNet, serialize_model
from azgo_core.records import BLACK, WHITE, GameRecord, encode_batch
from azgo_core.search import uniform_evaluator
from azgo_core.selfplay import SelfPlayRunner

_seeds = itertools.count(1)


def tiny_settings(config: Path | None = None) -> Settings:
    """Settings from a ``procs.tiny_config`` file, or the TINY sections without a file."""
    return load_settings(config) if config is not None else load_settings(None, **TINY)


def model_blob(settings: Settings, generation: int, **meta) -> tuple[bytes, str]:
    """(model file, its sha256) of a fresh tiny network labelled ``generation``."""
    blob = serialize_model(AZNet(settings.net_config()), generation=generation, **meta)
    return blob, hashlib.sha256(blob).hexdigest()


def publish(settings: Settings, generation: int, **meta) -> tuple[P.PublishModel, list[bytes]]:
    """A PublishModel request and its blob frames."""
    blob, sha = model_blob(settings, generation, **meta)
    return P.PublishModel(generation=generation, sha256=sha), [blob]


def play_games(settings: Settings, n: int, worker_id: str, generation: int = 0, seed: int | None = None) -> list[GameRecord]:
    """``n`` finished self-play games with the uniform evaluator (a few hundred ms on 5x5)."""
    runner = SelfPlayRunner(settings.selfplay_config(), uniform_evaluator, model_generation=generation,
                            worker_id=worker_id, seed=next(_seeds) if seed is None else seed)
    return runner.play(n)


def batch(batch_id: str, worker_id: str, records: Sequence[GameRecord], compress: bool = True,
          **overrides) -> tuple[P.SubmitBatch, list[bytes]]:
    """A SubmitBatch whose header describes ``records`` (``overrides`` replace header fields)."""
    fields = {"batch_id": batch_id, "worker_id": worker_id, "games": len(records),
              "positions": sum(g.num_moves for g in records),
              "generations": sorted({g.model_generation for g in records})}
    fields.update(overrides)
    return P.SubmitBatch(**fields), [encode_batch(records, compress=compress)]


def game(moves: Sequence[int], *, size: int = 5, komi: float = 7.5, worker_id: str = "w", generation: int = 0) -> GameRecord:
    """A hand-made game record: one visited child per move (the move itself), resigned by the side to move
    after the last move (so a true record when its moves are legal and do not end the game)."""
    winner = WHITE if len(moves) % 2 == 0 else BLACK  # black moves first: after an even count black resigns
    return GameRecord.from_visits(size, komi, list(moves), [([m], [1]) for m in moves], winner=winner, resigned=True,
                                  model_generation=generation, worker_id=worker_id)
