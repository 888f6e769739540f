"""The outbox: game batches kept on disk until the broker acknowledges them.

A finished batch is written here BEFORE it is sent and deleted only when the broker's
``BatchAck`` says it is stored (fsynced). A worker that crashes, or a broker that restarts,
therefore loses no game that was ever put in a batch: the next run (or the next connection)
resends every file, and the broker stores each batch id once.

Layout under ``<self_play.data_dir>/<worker_id>/outbox/``:

    <batch_id>.batch           a batch waiting for its ack (written atomically: temp, fsync, rename)
    rejected/<batch_id>.batch  refused by the broker (BAD_BATCH, WRONG_GENERATION...): kept for a
    rejected/<batch_id>.txt    person to look at, with the broker's reason; never resent
    corrupt/<name>             a file that could not be read back (truncated, not ours): kept, never sent
    journal.log                what happened to each batch, one line per event (below)
    journal.log.1              the previous journal, once journal.log passed JOURNAL_MAX_BYTES

The journal is an append-only audit, a tab-separated line per event::

    <unix time>  put     <batch_id>  games=<n>  positions=<n>     written to the outbox
    <unix time>  ack     <batch_id>  seq=<n>    duplicate=<0|1>   the broker said it is stored
    <unix time>  reject  <batch_id>  <error code>                 the broker refused it for good

An ``ack`` line is appended BEFORE the batch file is deleted, and a ``put`` line AFTER the file
is in place, so a crash between the two steps leaves a file the journal does not yet explain
(resent, then acked as a duplicate), never a journal line for a batch that is gone unacked:
every batch missing from the outbox has an ``ack`` (or ``reject``) line. Lines are written
with one ``write`` each (a process crash never tears one) but not fsynced: a power cut may
lose the last ones. ``read_journal`` parses both files, oldest first.

A batch file is a msgpack map (never pickle): the header's fields (``protocol.BatchHeader``,
checked by it when the file is read), the file format version, the creation time and the blob:

    v            int        file format version (1)
    batch_id     str        unique per batch and kept across resends: "<worker_id>-<uuid4 hex>"
    worker_id    str        the worker that played the games
    games        int        games in the batch (>= 1)
    positions    int        moves over all its games
    generations  list[int]  distinct model generations the games were played with, ascending
    created      float      unix time the batch was made: the resend order
    blob         bin        ``records.encode_batch`` output, the SubmitBatch blob frame
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

import msgpack
from pydantic import ValidationError

from azgo_core.files import atomic_write
from azgo_core.protocol import BatchHeader, field_errors

log = logging.getLogger("azgo.selfplay.outbox")

FORMAT_VERSION = 1
SUFFIX = ".batch"
MAX_FILE_BYTES = 1 << 30  # a batch file is at most a max_batch_bytes blob plus a few fields
_FIELDS = {"v", *BatchHeader.model_fields, "created", "blob"}
JOURNAL = "journal.log"
JOURNAL_MAX_BYTES = 8 << 20
"""Size at which journal.log becomes journal.log.1 (replacing the older one): at most twice this on disk."""


class OutboxError(ValueError):
    """A batch file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Batch:
    """One batch of finished games as the outbox keeps it (see the module docstring)."""

    header: BatchHeader
    blob: bytes
    created: float = 0.0

    def to_bytes(self) -> bytes:
        return msgpack.packb({"v": FORMAT_VERSION, **dict(self.header), "created": self.created, "blob": self.blob},
                             use_bin_type=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> Batch:
        """Parse a batch file; raises ``OutboxError`` naming the problem."""
        try:
            d = msgpack.unpackb(data, raw=False, strict_map_key=True, max_array_len=1 << 16, max_map_len=16,
                                max_str_len=1 << 12, max_ext_len=0)
        except (ValueError, msgpack.UnpackException) as e:
            raise OutboxError(f"not a batch file (msgpack: {type(e).__name__}: {e})") from None
        if not isinstance(d, dict) or set(d) != _FIELDS:
            keys = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise OutboxError(f"not a batch file: expected the keys {sorted(_FIELDS)}, got {keys}")
        if d["v"] != FORMAT_VERSION:
            raise OutboxError(f"batch file format version {d['v']!r}, this code reads {FORMAT_VERSION}")
        if not isinstance(d["created"], (int, float)) or not isinstance(d["blob"], bytes) or not d["blob"]:
            raise OutboxError("field 'created' must be a number and 'blob' non-empty bytes")
        try:
            header = BatchHeader.model_validate({name: d[name] for name in BatchHeader.model_fields})
        except ValidationError as e:
            raise OutboxError(f"not a valid batch header: {field_errors(e)}") from None
        return cls(header, d["blob"], float(d["created"]))


@dataclass(frozen=True)
class Entry:
    """What the outbox remembers of a batch in memory (the blob stays on disk)."""

    header: BatchHeader
    created: float


@dataclass(frozen=True)
class JournalLine:
    """One event of the outbox journal; ``fields`` holds the key=value parts (and ``code`` of a reject)."""

    time: float
    event: str
    batch_id: str
    fields: dict[str, str]


def read_journal(directory: str | os.PathLike) -> list[JournalLine]:
    """The journal of the outbox in ``directory`` (journal.log.1, then journal.log), oldest first."""
    lines = []
    for name in (JOURNAL + ".1", JOURNAL):
        path = Path(directory) / name
        if not path.exists():
            continue
        for n, text in enumerate(path.read_text().splitlines(), 1):
            parts = text.split("\t")
            if len(parts) < 3:
                raise OutboxError(f"{path} line {n}: {text!r} is not a journal line")
            fields = dict(p.split("=", 1) if "=" in p else ("code", p) for p in parts[3:])
            lines.append(JournalLine(float(parts[0]), parts[1], parts[2], fields))
    return lines


class Outbox:
    """Batches on disk until acknowledged; ``pending()`` lists them oldest first.

    Opening a folder reads every batch file left there (by a previous run) and moves the ones
    that cannot be read to ``corrupt/`` with a log line, so a damaged file never stops a worker.
    """

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        self.rejected_dir = self.dir / "rejected"
        self.corrupt_dir = self.dir / "corrupt"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.journal_path = self.dir / JOURNAL
        self._journal_failing = False
        self._entries: dict[str, Entry] = {}
        self._scan()

    # --- reading ------------------------------------------------------------------------
    def _scan(self) -> None:
        for path in sorted(self.dir.iterdir()):
            if not path.is_file() or path.name in (JOURNAL, JOURNAL + ".1"):
                continue
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)  # an interrupted atomic write: the batch was never acked or sent
                continue
            batch = self._read(path)
            if batch is not None:
                self._entries[batch.header.batch_id] = Entry(batch.header, batch.created)
        self._entries = dict(sorted(self._entries.items(), key=lambda kv: (kv[1].created, kv[0])))
        if self._entries:
            games = sum(e.header.games for e in self._entries.values())
            log.info("outbox %s: %d batch(es) with %d games left to send", self.dir, len(self._entries), games)

    def _read(self, path: Path) -> Batch | None:
        """The batch in ``path``, or None after moving an unusable file to ``corrupt/``."""
        try:
            if not path.name.endswith(SUFFIX):
                raise OutboxError(f"unexpected file (batch files end in {SUFFIX})")
            if path.stat().st_size > MAX_FILE_BYTES:
                raise OutboxError(f"{path.stat().st_size} bytes, above {MAX_FILE_BYTES}")
            batch = Batch.from_bytes(path.read_bytes())
            if path.name != batch.header.batch_id + SUFFIX:
                raise OutboxError(f"holds batch {batch.header.batch_id!r}, which does not match its file name")
            return batch
        except (OutboxError, OSError) as e:
            self._quarantine(path, str(e))
            return None

    def _quarantine(self, path: Path, reason: str) -> None:
        self.corrupt_dir.mkdir(exist_ok=True)
        target = self.corrupt_dir / path.name
        log.error("outbox file %s is unusable (%s): moved to %s, it will not be sent", path, reason, target)
        try:
            os.replace(path, target)
        except OSError as e:
            log.error("could not move %s aside: %s", path, e)

    def pending(self) -> list[str]:
        """Batch ids waiting for an ack, oldest first."""
        return list(self._entries)

    def get(self, batch_id: str) -> Batch | None:
        """The batch (read from disk), or None when it is gone or was found corrupt (moved aside, logged)."""
        if batch_id not in self._entries:
            return None
        batch = self._read(self.path(batch_id))
        if batch is None:
            self._entries.pop(batch_id, None)
        return batch

    def path(self, batch_id: str) -> Path:
        return self.dir / (batch_id + SUFFIX)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, batch_id: object) -> bool:
        return batch_id in self._entries

    @property
    def games(self) -> int:
        """Games in the batches waiting for an ack."""
        return sum(e.header.games for e in self._entries.values())

    # --- writing ------------------------------------------------------------------------
    def put(self, batch: Batch) -> None:
        """Write ``batch`` durably (atomic, fsynced) before anyone sends it (its header's batch id, checked
        when the header was made, names the file)."""
        if not batch.created:
            batch = replace(batch, created=time.time())
        header = batch.header
        atomic_write(self.path(header.batch_id), batch.to_bytes())
        self._entries[header.batch_id] = Entry(header, batch.created)
        self._journal("put", header.batch_id, f"games={header.games}", f"positions={header.positions}")

    def ack(self, batch_id: str, seq: int = -1, duplicate: bool = False) -> bool:
        """The broker stored ``batch_id`` (as ``seq``): journal it, then delete its file. False when it was not here."""
        self._journal("ack", batch_id, f"seq={seq}", f"duplicate={int(duplicate)}")
        entry = self._entries.pop(batch_id, None)
        self.path(batch_id).unlink(missing_ok=True)
        return entry is not None

    def reject(self, batch_id: str, reason: str) -> Path | None:
        """The broker refused ``batch_id`` for good: move it to ``rejected/`` beside a note of the reason."""
        if self._entries.pop(batch_id, None) is None:
            return None
        self._journal("reject", batch_id, re.sub(r"\s+", "_", reason.split(":", 1)[0].strip()) or "?")
        self.rejected_dir.mkdir(exist_ok=True)
        target = self.rejected_dir / (batch_id + SUFFIX)
        os.replace(self.path(batch_id), target)
        (self.rejected_dir / f"{batch_id}.txt").write_text(reason + "\n")
        return target

    def _journal(self, event: str, batch_id: str, *fields: str) -> None:
        """Append one journal line (a single write); a failure is logged, never raised: the journal is an audit."""
        line = "\t".join((f"{time.time():.3f}", event, batch_id, *fields)) + "\n"
        try:
            with open(self.journal_path, "ab") as f:
                f.write(line.encode())
                size = f.tell()
            if size >= JOURNAL_MAX_BYTES:
                os.replace(self.journal_path, self.journal_path.with_name(JOURNAL + ".1"))
        except OSError as e:
            if not self._journal_failing:
                log.error("cannot append to the outbox journal %s: %s (batches are still kept and acked)",
                          self.journal_path, e)
            self._journal_failing = True
            return
        self._journal_failing = False
