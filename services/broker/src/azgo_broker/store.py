"""The durable game store: append-only segment files of accepted batches, and their index.

On disk (``data_dir/games/``), segments ``000000.seg``, ``000001.seg``, ... each a run of records::

    record   = header | payload
    header   = magic b"AZGB" | u32 LE payload length | u32 LE crc32(payload)      (12 bytes)
    payload  = msgpack map {seq, batch_id, worker_id, games, positions, generations, received, blob}

``batch_id`` .. ``generations`` are the batch's header (``protocol.BatchHeader``, checked again
when a record is read back); ``seq`` numbers batches 0, 1, 2... in store order; ``blob`` is the batch exactly as the worker
sent it (``records.encode_batch`` output, lz4 or plain); ``received`` is unix time. A new
segment starts once the current one holds ``segment_bytes`` (checked between rounds, so a
round of appends never straddles two files).

Writes are group commits: ``append`` writes a record without syncing, ``commit`` fsyncs once
for every record appended since the last commit and only then makes them visible (index,
totals, ``seen``); ``rollback`` truncates them away. A batch is acknowledged after ``commit``,
so an acknowledged batch survives a crash at any moment.

The index (``entries``, ``by_id``) is rebuilt by scanning every segment at start. A torn or
corrupt record with nothing readable after it at the end of the last segment (a crash
mid-write: the only way to tear a record) is truncated away with a warning. A corrupt record
followed by readable ones, in any segment, is damage, not a torn write: it is logged as an
error and skipped, and the records after it (acknowledged batches) are kept.

Reads use ``os.pread`` on raw descriptors (no user-space buffer that could serve bytes a
rollback has since rewritten), at most ``READERS`` of them open, the least recently used
closed first.
"""

from __future__ import annotations

import bisect
import errno
import logging
import os
import re
import struct
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgpack
from pydantic import ValidationError

from azgo_core.protocol import BatchHeader, field_errors

log = logging.getLogger("azgo.broker.store")

MAGIC = b"AZGB"
HEADER = struct.Struct("<4sII")  # magic, payload length, crc32 of the payload
SEGMENT_RE = re.compile(r"^(\d{6,})\.seg$")
PAYLOAD_KEYS = frozenset({"seq", *BatchHeader.model_fields, "received", "blob"})
READERS = 4
"""Read descriptors kept open (one per segment, least recently used closed first)."""


class StoreError(OSError):
    """The store could not write or sync: the batches of the round were not stored."""


def os_error_text(e: OSError) -> str:
    """An OS error as the broker reports it; a full disk (or quota) is said in words."""
    return f"disk full ({e})" if e.errno in (errno.ENOSPC, errno.EDQUOT) else str(e)


@dataclass(frozen=True, slots=True)
class Entry:
    """Where one stored batch lives, and what it holds."""

    seq: int
    header: BatchHeader
    segment: int
    offset: int
    """Byte offset of the record header in the segment file."""
    length: int
    """Whole record length (header + payload)."""
    blob_bytes: int
    received: float


@dataclass(frozen=True)
class Window:
    """The answer to ``GameStore.window``: the entries to send, oldest first."""

    entries: list[Entry]
    more: bool


def segment_name(index: int) -> str:
    return f"{index:06d}.seg"


def encode_record(payload: dict) -> bytes:
    """One record: header and msgpack payload."""
    body = msgpack.packb(payload, use_bin_type=True)
    return HEADER.pack(MAGIC, len(body), zlib.crc32(body)) + body


class _Corrupt(ValueError):
    """A record that cannot be read at some offset (the message says why)."""


def _parse_payload(body: bytes) -> tuple[dict, BatchHeader]:
    try:
        payload = msgpack.unpackb(body, raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException) as e:
        raise _Corrupt(f"payload is not msgpack ({type(e).__name__})") from None
    if not isinstance(payload, dict) or set(payload) != PAYLOAD_KEYS:
        raise _Corrupt("payload is not a stored-batch map")
    if type(payload["seq"]) is not int or not isinstance(payload["blob"], bytes):
        raise _Corrupt("payload has a bad seq or blob")
    if not isinstance(payload["received"], (int, float)):
        raise _Corrupt("payload has a bad received time")
    try:
        header = BatchHeader.model_validate({name: payload[name] for name in BatchHeader.model_fields})
    except ValidationError as e:
        raise _Corrupt(f"payload has a bad batch header ({field_errors(e)})") from None
    return payload, header


def _read_record(data: bytes | memoryview, offset: int) -> tuple[dict, BatchHeader, int]:
    """Parse the record at ``offset``; returns (payload, its header, record length). Raises _Corrupt."""
    left = len(data) - offset
    if left < HEADER.size:
        raise _Corrupt(f"torn header ({left} of {HEADER.size} bytes)")
    magic, length, crc = HEADER.unpack_from(data, offset)
    if magic != MAGIC:
        raise _Corrupt(f"bad magic {bytes(magic)!r}")
    if length > left - HEADER.size:
        raise _Corrupt(f"torn record (payload of {length} bytes, {left - HEADER.size} present)")
    body = bytes(data[offset + HEADER.size: offset + HEADER.size + length])
    if zlib.crc32(body) != crc:
        raise _Corrupt("crc32 mismatch")
    return *_parse_payload(body), HEADER.size + length


class GameStore:
    """Append-only game log with a batch-id index; see the module docstring for the format."""

    def __init__(self, directory: str | os.PathLike, *, segment_bytes: int = 64 << 20, fsync: bool = True):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.entries: list[Entry] = []
        self.by_id: dict[str, int] = {}
        self._prefix: list[int] = [0]  # _prefix[i] = positions in entries[:i]
        self.total_games = 0
        self.segment_sizes: dict[int, int] = {}
        self._pending: list[Entry] = []
        self._round_start: int | None = None  # offset of the first uncommitted byte
        self._readers: OrderedDict[int, int] = OrderedDict()  # segment -> O_RDONLY fd, most recent last
        self._recover()
        self._next_seq = self.last_seq + 1
        self._open_tail()

    # --- figures --------------------------------------------------------------------------
    @property
    def total_positions(self) -> int:
        return self._prefix[-1]

    @property
    def last_seq(self) -> int:
        return self.entries[-1].seq if self.entries else -1

    @property
    def store_bytes(self) -> int:
        return sum(self.segment_sizes.values())

    def seq_of(self, batch_id: str) -> int | None:
        """The seq of a committed batch id, or None."""
        return self.by_id.get(batch_id)

    def pending_seq_of(self, batch_id: str) -> int | None:
        """The seq of a batch id appended in this round but not yet committed, or None."""
        for e in self._pending:
            if e.header.batch_id == batch_id:
                return e.seq
        return None

    # --- recovery -------------------------------------------------------------------------
    def _segments(self) -> list[int]:
        found = []
        for p in self.dir.iterdir():
            m = SEGMENT_RE.match(p.name)
            if m and p.is_file():
                found.append(int(m.group(1)))
        return sorted(found)

    def _recover(self) -> None:
        """Rebuild the index from the segments, truncating a torn tail of the last one."""
        segments = self._segments()
        for i, index in enumerate(segments):
            self._scan_segment(index, last=(i == len(segments) - 1))

    def _scan_segment(self, index: int, last: bool) -> None:
        path = self.dir / segment_name(index)
        data = path.read_bytes()
        size = len(data)
        for offset, payload, header, length, damage in _walk(data):
            if payload is not None:
                self._index(payload, header, index, offset, length)
            elif last and offset + length == len(data):  # nothing readable follows: a crash mid-write
                self._truncate_tail(path, offset, len(data), damage)
                size = offset
            else:  # damage with readable records after it (possibly acknowledged batches): keep those
                log.error("game store: corrupt record in %s at offset %d (%s); skipping %d bytes",
                          path, offset, damage, length)
        self.segment_sizes[index] = size

    @staticmethod
    def _truncate_tail(path: Path, offset: int, size: int, why: str) -> None:
        log.warning("game store: %s at offset %d of %s; truncating the torn tail, dropping %d bytes",
                    why, offset, path, size - offset)
        with open(path, "r+b") as f:
            f.truncate(offset)
            f.flush()
            os.fsync(f.fileno())

    def _index(self, payload: dict, header: BatchHeader, segment: int, offset: int, length: int) -> None:
        seq, batch_id = payload["seq"], header.batch_id
        if batch_id in self.by_id or (self.entries and seq <= self.entries[-1].seq):
            log.error("game store: record at %s offset %d repeats batch %s / seq %d; skipped",
                      segment_name(segment), offset, batch_id, seq)
            return
        self._add(Entry(seq, header, segment, offset, length, len(payload["blob"]), float(payload["received"])))

    def _add(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.by_id[entry.header.batch_id] = entry.seq
        self._prefix.append(self._prefix[-1] + entry.header.positions)
        self.total_games += entry.header.games

    # --- writing --------------------------------------------------------------------------
    def _open_tail(self) -> None:
        """Open the last segment for appending (a fresh one when there is none or it is full)."""
        segments = sorted(self.segment_sizes)
        if segments and self.segment_sizes[segments[-1]] < self.segment_bytes:
            self._tail = segments[-1]
        else:
            self._tail = segments[-1] + 1 if segments else 0
            self._create_segment(self._tail)
        self._fd = os.open(self.dir / segment_name(self._tail), os.O_WRONLY | os.O_APPEND)

    def _create_segment(self, index: int) -> None:
        fd = os.open(self.dir / segment_name(index), os.O_WRONLY | os.O_CREAT, 0o644)
        os.close(fd)
        self.segment_sizes[index] = 0
        dir_fd = os.open(self.dir, os.O_RDONLY)  # make the new name durable
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def append(self, header: BatchHeader, blob: bytes, received: float | None = None) -> int:
        """Write one batch (not yet synced nor visible); returns its seq. Raises StoreError, writing nothing."""
        seq = self._next_seq
        received = time.time() if received is None else received
        record = encode_record({"seq": seq, **dict(header), "received": received, "blob": bytes(blob)})
        offset = self.segment_sizes[self._tail]
        if self._round_start is None:
            self._round_start = offset
        try:
            # a short write (the disk filled up part-way) is written on: the next write names the error
            view = memoryview(record)
            while view:
                n = os.write(self._fd, view)
                if n == 0:
                    raise OSError(errno.EIO, "write wrote nothing")
                view = view[n:]
        except OSError as e:
            self._truncate(offset)
            raise StoreError(f"cannot append to {segment_name(self._tail)}: {os_error_text(e)}") from e
        self.segment_sizes[self._tail] = offset + len(record)
        self._next_seq = seq + 1
        self._pending.append(Entry(seq, header, self._tail, offset, len(record), len(blob), received))
        return seq

    def commit(self) -> list[Entry]:
        """fsync the round's appends and make them visible; returns them. On failure rolls back and raises StoreError."""
        if not self._pending:
            self._round_start = None
            return []
        try:
            if self.fsync:
                os.fsync(self._fd)
        except OSError as e:
            self.rollback()
            raise StoreError(f"cannot sync {segment_name(self._tail)}: {os_error_text(e)}") from e
        done, self._pending, self._round_start = self._pending, [], None
        for entry in done:
            self._add(entry)
        if self.segment_sizes[self._tail] >= self.segment_bytes:
            self._roll_over()
        return done

    def rollback(self) -> None:
        """Drop every append since the last commit (truncate the segment back)."""
        start, self._pending, self._round_start = self._round_start, [], None
        if start is not None:
            self._truncate(start)

    def _truncate(self, offset: int) -> None:
        """Cut the tail segment back to ``offset``; the seqs written past it are reused only if that worked."""
        try:
            os.ftruncate(self._fd, offset)
        except OSError as e:
            # The unacknowledged records stay on disk and a restart will index them (a worker's resend
            # is then a duplicate); their seqs are never handed out again, so the log stays ordered.
            log.error("game store: cannot truncate %s back to %d: %s", segment_name(self._tail), offset, e)
            self.segment_sizes[self._tail] = os.fstat(self._fd).st_size
            return
        self.segment_sizes[self._tail] = offset
        self._next_seq = (self._pending[-1].seq if self._pending else self.last_seq) + 1

    def _roll_over(self) -> None:
        """Start the next segment; if that fails, keep appending to the full one (and try again next round)."""
        try:
            self._create_segment(self._tail + 1)
            fd = os.open(self.dir / segment_name(self._tail + 1), os.O_WRONLY | os.O_APPEND)
        except OSError as e:
            log.error("game store: cannot start segment %s, staying on %s: %s", segment_name(self._tail + 1),
                      segment_name(self._tail), e)
            return
        os.close(self._fd)
        self._fd, self._tail = fd, self._tail + 1
        log.info("game store: started segment %s", segment_name(self._tail))

    # --- reading --------------------------------------------------------------------------
    def window(self, after: int, window: int, max_bytes: int, max_count: int | None = None) -> Window:
        """Committed batches with seq > ``after`` that hold some of the last ``window`` positions.

        Oldest first, stopping before ``max_bytes`` of blobs or ``max_count`` batches would be
        passed (at least one batch is always returned when any qualifies); ``more`` says
        whether qualifying batches remain.
        """
        total = self.total_positions
        # newest-first, the window's oldest batch is the last one needed to reach `window` positions
        first = max(0, bisect.bisect_right(self._prefix, total - window) - 1)
        seqs_start = bisect.bisect_right(self.entries, after, key=lambda e: e.seq)
        start = max(first, seqs_start)
        out, size = [], 0
        for entry in self.entries[start:]:
            if out and (size + entry.blob_bytes > max_bytes or len(out) == max_count):
                break
            out.append(entry)
            size += entry.blob_bytes
        return Window(out, start + len(out) < len(self.entries))

    def read_blob(self, entry: Entry) -> bytes:
        """The stored batch of ``entry``, as received (re-checked against its crc)."""
        return _blob(entry, segment_name(entry.segment),
                     lambda: os.pread(self._reader(entry.segment), entry.length, entry.offset))

    def _reader(self, segment: int) -> int:
        """A read descriptor for ``segment``, opened on first use; keeps at most ``READERS`` open."""
        fd = self._readers.get(segment)
        if fd is not None:
            self._readers.move_to_end(segment)
            return fd
        fd = self._readers[segment] = os.open(self.dir / segment_name(segment), os.O_RDONLY)
        while len(self._readers) > READERS:
            os.close(self._readers.popitem(last=False)[1])
        return fd

    def recent_rates(self, seconds: float, now: float | None = None) -> tuple[float, float]:
        """(games/s, positions/s) of the batches received in the last ``seconds``."""
        now = time.time() if now is None else now
        games = positions = 0
        for entry in reversed(self.entries):
            if entry.received < now - seconds:
                break
            games += entry.header.games
            positions += entry.header.positions
        return games / seconds, positions / seconds

    def close(self) -> None:
        """Drop uncommitted appends and close the files."""
        self.rollback()
        os.close(self._fd)
        while self._readers:
            os.close(self._readers.popitem()[1])


def read_committed(directory: str | os.PathLike, entry: Entry) -> bytes:
    """The stored batch of a committed ``entry``, read through a descriptor of its own.

    For readers outside the broker's loop (the dashboard's HTTP thread): committed records
    never change, so this needs neither the store's descriptors nor its index.
    """
    path = Path(directory) / segment_name(entry.segment)

    def read() -> bytes:
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.pread(fd, entry.length, entry.offset)
        finally:
            os.close(fd)

    return _blob(entry, path.name, read)


def _blob(entry: Entry, name: str, read: Callable[[], bytes]) -> bytes:
    """The blob of the record ``read()`` returns (``entry``'s, in segment ``name``); StoreError says why not."""
    try:
        payload, _, _ = _read_record(read(), 0)
    except OSError as e:
        raise StoreError(f"cannot read stored batch seq {entry.seq} from {name}: {e}") from e
    except _Corrupt as e:
        raise StoreError(f"stored batch seq {entry.seq} in {name} is unreadable: {e}") from None
    return payload["blob"]


# --- audit (read-only) ------------------------------------------------------------------------
@dataclass(frozen=True)
class Damage:
    """Bytes of a segment that hold no readable record."""

    segment: int
    offset: int
    size: int
    reason: str
    tail: bool
    """Nothing readable follows, at the end of the last segment: a torn write (the next start truncates it)."""


@dataclass(frozen=True)
class Audit:
    """What ``audit`` found: every readable record (its payload without the blob) and every damaged span."""

    records: list[dict]
    """Payload fields but ``blob``, plus ``blob_bytes``, ``segment`` and ``offset``; in file order."""
    damage: list[Damage]


def audit(directory: str | os.PathLike) -> Audit:
    """Scan the segments in ``directory`` without changing anything (a broker may be running).

    Every record is checked as a start checks it (magic, length, crc32, payload map). A record
    being appended while this reads shows as tail ``Damage``; repeated batch ids are reported
    as found (a start would skip the later one), not filtered.
    """
    directory = Path(directory)
    segments = sorted(int(m.group(1)) for p in directory.iterdir() if (m := SEGMENT_RE.match(p.name)) and p.is_file())
    records, damage = [], []
    for i, index in enumerate(segments):
        data = (directory / segment_name(index)).read_bytes()
        for offset, payload, _, length, why in _walk(data):
            if payload is None:
                damage.append(Damage(index, offset, length, why, i == len(segments) - 1 and offset + length == len(data)))
                continue
            blob = payload.pop("blob")
            records.append({**payload, "blob_bytes": len(blob), "segment": index, "offset": offset})
    return Audit(records, damage)


def _walk(data: bytes):
    """A segment's contents in order: (offset, payload, header, length, "") per readable record
    and (offset, None, None, length, reason) per damaged span, which ends at the next magic that
    starts a readable record, else at the end."""
    offset = 0
    while offset < len(data):
        try:
            payload, header, length = _read_record(data, offset)
        except _Corrupt as e:
            skip = _skip_corrupt(data, offset)
            yield offset, None, None, skip - offset, str(e)
            offset = skip
            continue
        yield offset, payload, header, length, ""
        offset += length


def _skip_corrupt(data: bytes, offset: int) -> int:
    """Where to resume after a corrupt record: the next magic that starts a readable record, else the end."""
    at = data.find(MAGIC, offset + 1)
    while at != -1:
        try:
            _read_record(data, at)
            return at
        except _Corrupt:
            at = data.find(MAGIC, at + 1)
    return len(data)
