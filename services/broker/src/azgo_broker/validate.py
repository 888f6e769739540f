"""Checking a submitted game batch before it may enter the store.

A batch is stored only if all of this holds (else ``BatchRejected`` with the ``ErrorCode``
for the reply and a reason naming the game and move at fault):

- the blob is at most ``max_bytes`` and decodes (``records.decode_batch``) within the limits;
- the header's ``games`` and ``positions`` (= moves summed over the games) match the records;
- every game is on this run's board size and komi, was played by the submitting worker;
- every game's model generation was published by this broker (else ``WRONG_GENERATION``),
  and the header's ``generations`` are exactly the generations found in the games;
- every game tells the truth (``azgo_core.verify.check_record``): replayed with ``Position``
  (Tromp-Taylor, positional superko), every move is legal, every search's visits are on moves
  legal there, each child once, within 2**20 in all, the played move visited, and the result is
  the one the final position gives (the counted score of an ended game, or a resignation by
  the side to move of an unfinished one); ``rules`` is 'tromp-taylor'.

``check_batch`` is what the broker calls: the same decision, fast. A batch that passes the
columnar check of ``azgo_core.batchcheck`` (one compiled replay for all its games) and the
header and provenance checks on its columns is accepted at once; any other goes through
``validate_batch``, the definition, which names what is wrong. The compiled check is made
ready in a thread on the first call (``fast_path_ready``): about 10 s of CPU when numba's disk
cache is cold, so batches take the slow path meanwhile rather than the loop stalling.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Container
from dataclasses import dataclass

from azgo_core.batchcheck import BatchScan, scan_batch, warm_up
from azgo_core.protocol import ErrorCode, SubmitBatch
from azgo_core.records import GameRecord, RecordError, decode_batch
from azgo_core.verify import check_record

log = logging.getLogger("azgo.broker.validate")


class BatchRejected(ValueError):
    """A batch that may not be stored; ``code`` is the reply's ``ErrorCode``."""

    def __init__(self, code: ErrorCode, reason: str):
        super().__init__(f"{code.value}: {reason}")
        self.code, self.reason = code, reason


@dataclass(frozen=True)
class BatchRules:
    """What every batch of this run must satisfy."""

    board_size: int
    komi: float
    max_games: int
    max_bytes: int


def validate_batch(msg: SubmitBatch, blob: bytes, rules: BatchRules, published: Container[int]) -> list[GameRecord]:
    """The batch's records if ``blob`` is acceptable for ``msg``; else raises ``BatchRejected``."""
    if len(blob) > rules.max_bytes:
        raise BatchRejected(ErrorCode.TOO_LARGE, f"batch of {len(blob)} bytes, above the limit of {rules.max_bytes}")
    try:
        records = decode_batch(blob, max_games=rules.max_games, max_bytes=rules.max_bytes)
    except RecordError as e:
        raise BatchRejected(ErrorCode.BAD_BATCH, f"undecodable batch: {e}") from None
    _check_counts(msg, records)
    for i, record in enumerate(records):
        _check_game(i, record, msg, rules, published)
    found = sorted({r.model_generation for r in records})
    if found != sorted(set(msg.generations)):
        raise BatchRejected(ErrorCode.BAD_BATCH, f"header says generations {sorted(set(msg.generations))}, "
                                                 f"the games were played with {found}")
    for i, record in enumerate(records):
        _check_truth(i, record)
    return records


def check_batch(msg: SubmitBatch, blob: bytes, rules: BatchRules, published: Container[int]) -> None:
    """Accept ``blob`` for ``msg`` or raise ``BatchRejected``: the decision of ``validate_batch``, without its records."""
    scan = None
    if len(blob) <= rules.max_bytes and fast_path_ready():
        scan = scan_batch(blob, rules.board_size, rules.max_games, rules.max_bytes)
    if scan is None or not _scan_acceptable(msg, scan, rules, published):
        validate_batch(msg, blob, rules, published)  # raises, naming the game and the check at fault


_compiled = threading.Event()
_compile_started = threading.Lock()


def fast_path_ready(timeout: float = 0.0) -> bool:
    """Whether ``scan_batch`` is compiled, waiting up to ``timeout`` s; the first call starts the compile in a thread."""
    if not _compiled.is_set() and _compile_started.acquire(blocking=False):  # held for good: one compile per process
        threading.Thread(target=_compile_fast_path, name="azgo-batchcheck-compile", daemon=True).start()
    return _compiled.wait(timeout) if timeout > 0 else _compiled.is_set()


def _compile_fast_path() -> None:
    try:
        seconds = warm_up()
    except Exception:  # a compiler failure costs speed, never a batch: the slow path decides alone
        log.exception("the fast batch check is unavailable: every batch goes through validate_batch")
        return
    log.info("fast batch check ready (compiled or loaded from numba's cache in %.1f s)", seconds)
    _compiled.set()


def _scan_acceptable(msg: SubmitBatch, scan: BatchScan, rules: BatchRules, published: Container[int]) -> bool:
    """The header and provenance checks of ``validate_batch`` on a scanned (decoded, legal) batch."""
    generations = set(scan.model_generation.tolist())
    return (scan.games == msg.games and scan.positions == msg.positions and bool((scan.komi == rules.komi).all())
            and scan.worker_id.count(msg.worker_id) == scan.games
            and all(g in published for g in generations) and sorted(generations) == sorted(set(msg.generations)))


def _check_counts(msg: SubmitBatch, records: list[GameRecord]) -> None:
    if len(records) != msg.games:
        raise BatchRejected(ErrorCode.BAD_BATCH, f"header says {msg.games} games, the batch holds {len(records)}")
    positions = sum(r.num_moves for r in records)
    if positions != msg.positions:
        raise BatchRejected(ErrorCode.BAD_BATCH,
                            f"header says {msg.positions} positions, the games hold {positions} moves")


def _check_game(i: int, record: GameRecord, msg: SubmitBatch, rules: BatchRules, published: Container[int]) -> None:
    """One game's provenance: board, komi, worker, generation."""
    n = rules.board_size
    if record.board_size != n:
        raise BatchRejected(ErrorCode.BAD_BATCH,
                            f"game {i}: board size {record.board_size}, this run plays {n}x{n}")
    if record.komi != rules.komi:
        raise BatchRejected(ErrorCode.BAD_BATCH, f"game {i}: komi {record.komi}, this run uses {rules.komi}")
    if record.worker_id != msg.worker_id:
        raise BatchRejected(ErrorCode.BAD_BATCH,
                            f"game {i}: played by worker {record.worker_id!r}, submitted by {msg.worker_id!r}")
    if record.model_generation not in published:
        raise BatchRejected(ErrorCode.WRONG_GENERATION,
                            f"game {i}: played with generation {record.model_generation}, which was never published")


def _check_truth(i: int, record: GameRecord) -> None:
    """Replay the game: its moves, its searches' visits and its result must be true."""
    try:
        check_record(record)
    except RecordError as e:
        text = str(e)
        raise BatchRejected(ErrorCode.BAD_BATCH, f"game {i}{', ' if text.startswith('move ') else ': '}{text}") from None
