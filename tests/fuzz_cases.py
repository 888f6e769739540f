"""Hostile requests for the broker fuzz (tests/test_broker_fuzz.py), drawn from a seeded ``random.Random``.

Each ``Case`` is the frames a DEALER sends and what the broker must answer: an ``Error`` whose
code is one of ``codes`` and whose message holds ``words`` (the field or problem by name),
with ``rid`` when the header carried one; or, for the two kinds of well-formed requests mixed
in, a duplicate ``BatchAck`` (a replayed id of the batch stored at the start) or a ``Welcome``
(a hello from a made-up worker id). Categories (``CATEGORIES``, with weights):

    random_bytes    random header bytes (and random blobs)
    truncated       a valid header cut short
    wrong_version   v missing, 0, 2, a string, a float, a huge value...
    unknown_type    a made-up type name, or a reply type sent as a request
    wrong_field     one field of a valid request with a wrong type, out of range, missing or extra
    not_a_map       a header that is msgpack but not a map
    huge_declared   msgpack declaring 4 GiB strings, arrays, maps, bins; nesting 1020 deep and deeper;
                    a 70 KB header
    blob_count      a request with too few or too many blob frames (up to 64)
    flip_blob       a valid batch with bytes flipped in its lz4 frame (the content checksum catches it)
    truncate_blob   a valid batch with its lz4 frame cut short
    bad_counts      a valid batch whose header misstates games, positions or generations
    broken_msgpack  a batch whose lz4 frame holds broken msgpack (cut, garbage, 4 G games declared)
    bomb            an lz4 frame declaring (or yielding) far more than the batch size limit
    oversize_blob   a blob above max_batch_bytes (but below the socket's maxmsgsize)
    board_size      games on a 7x7, 9x9 or 19x19 board, or with the wrong komi
    generation      games played with a generation never published
    illegal_move    a move on an occupied point, off the board, or after the game ended
    foreign_games   games played by another worker than the submitter
    replayed        the stored batch's id again: a duplicate ack, never a second store
    unknown_worker  a heartbeat from an id that never said hello
    hello_board     a hello for another board size
    hello_random    a hello from a made-up id: Welcome (the worker table must stay bounded)
    bad_publish     a model publish with junk bytes, or a stale generation
    no_model        a model generation never published

A case whose mutation happens to leave a header valid is drawn again (``ProtocolError`` from
the local ``P.decode`` is the test of "invalid"), and so is a flipped blob that still decodes
(lz4 ignores the low bits of a frame's last token: such a flip changes nothing), so no fuzz
batch can ever be stored.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import lz4.frame
import msgpack
import numpy as np
from broker_helpers import batch, game

from azgo_core import protocol as P
from azgo_core.records import GameRecord, RecordError, decode_batch, encode_batch

E = P.ErrorCode


@dataclass
class Case:
    category: str
    frames: list[bytes]
    codes: frozenset[str] = frozenset()
    """Acceptable error codes (empty: the reply is not an Error)."""
    words: str = ""
    rid: int | None = None
    reply: str = "error"
    """The reply's type: 'error', 'batch_ack' (a duplicate ack with seq ``duplicate_of``), 'welcome'..."""
    duplicate_of: int | None = None


@dataclass
class Base:
    """The valid material the mutations start from."""

    worker_id: str
    records: list[GameRecord]
    stored: P.SubmitBatch
    stored_blob: bytes
    stored_seq: int
    max_batch_bytes: int


def pack(fields: dict) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def oracle(header: bytes, blobs: int) -> P.ProtocolError | None:
    """What ``P.decode`` says of this header: the error the broker must send, or None when it is valid."""
    try:
        P.decode(header, blobs=blobs)
    except P.ProtocolError as e:
        return e
    return None


class Fuzz:
    """Draws ``Case``s; ``next_case()`` picks a category by weight."""

    def __init__(self, rng: random.Random, base: Base):
        self.rng, self.base = rng, base
        self.n = 0
        self.bombs = [lz4.frame.compress(b"\0" * (base.max_batch_bytes * 16), store_size=declared)
                      for declared in (True, False)]
        self.payload = encode_batch(base.records, compress=False)  # plain msgpack of the valid batch
        self.methods = [(getattr(self, name), weight) for name, weight in CATEGORIES.items()]
        self.cum = []
        total = 0
        for _, weight in self.methods:
            total += weight
            self.cum.append(total)

    def next_case(self) -> Case:
        self.n += 1
        method = self.rng.choices(self.methods, cum_weights=self.cum)[0][0]
        for _ in range(50):
            case = method()
            if case is not None:
                return case
        raise AssertionError(f"{method.__name__}: no invalid case in 50 draws")

    # --- helpers ---------------------------------------------------------------------------
    def rid(self) -> int:
        return self.rng.randrange(1, 2**62)

    def fresh_id(self, prefix: str = "fz") -> str:
        return f"{prefix}-{self.n}-{self.rng.getrandbits(32):08x}"

    def request(self) -> tuple[dict, int]:
        """A valid request header (as a dict) of a random type, and its blob count."""
        r, kind = self.rid(), self.rng.randrange(6)
        if kind == 0:
            msg = P.Hello(rid=r, worker_id=self.fresh_id(), board_size=5, host="h", pid=7)
        elif kind == 1:
            msg = P.Heartbeat(rid=r, worker_id=self.fresh_id("ghost"), games_per_s=1.0)
        elif kind == 2:
            msg = P.GetModel(rid=r, generation=0)
        elif kind == 3:
            msg = self.base.stored.model_copy(update={"rid": r, "batch_id": self.fresh_id()})
        elif kind == 4:
            msg = P.GetSamples(rid=r, window=10)
        else:
            msg = P.LearnerReport(rid=r, step=1, generation=0, samples_trained=1, positions_seen=1, samples_per_s=1.0,
                                  loss_policy=1.0, loss_value=1.0, loss_total=2.0)
        return msg.model_dump(mode="json"), type(msg).blobs

    def blobs_for(self, fields: dict, count: int) -> list[bytes]:
        return [self.base.stored_blob if fields.get("type") == "submit_batch" else self.rng.randbytes(16)
                for _ in range(count)]

    def from_oracle(self, category: str, header: bytes, blobs: list[bytes], words: str = "") -> Case | None:
        err = oracle(header, len(blobs))
        if err is None:
            return None  # the mutation left a valid request: draw again
        return Case(category, [header, *blobs], frozenset({err.code.value}), words, err.rid)

    def submit(self, category: str, records, codes, words: str, **overrides) -> Case:
        r = self.rid()
        msg, blobs = batch(self.fresh_id(), self.base.worker_id, records, compress=False, **overrides)
        return Case(category, [P.encode(msg.model_copy(update={"rid": r})), *blobs], frozenset(codes), words, r)

    def with_blob(self, category: str, blob: bytes, codes, words: str, **fields) -> Case:
        r = self.rid()
        msg = self.base.stored.model_copy(update={"rid": r, "batch_id": self.fresh_id(), **fields})
        return Case(category, [P.encode(msg), blob], frozenset(codes), words, r)

    # --- categories ------------------------------------------------------------------------
    def random_bytes(self):
        header = self.rng.randbytes(self.rng.randrange(0, 256))
        return self.from_oracle("random_bytes", header, [self.rng.randbytes(self.rng.randrange(64))
                                                         for _ in range(self.rng.randrange(3))])

    def truncated(self):
        fields, nblobs = self.request()
        header = pack(fields)
        return self.from_oracle("truncated", header[: self.rng.randrange(len(header))], self.blobs_for(fields, nblobs),
                                "not valid msgpack")

    def wrong_version(self):
        fields, nblobs = self.request()
        value = self.rng.choice([0, 2, 3, 255, -1, 2**63, "1", 1.0, 1.5, None, True, [1], {"v": 1}, "x" * 5000, "del"])
        if value == "del":
            del fields["v"]
        else:
            fields["v"] = value
        case = self.from_oracle("wrong_version", pack(fields), self.blobs_for(fields, nblobs), "protocol version")
        assert case is None or case.codes == {E.BAD_VERSION}, fields
        return case

    def unknown_type(self):
        r = self.rid()
        if self.rng.random() < 0.5:
            name = self.rng.choice(["frobnicate", "", "HELLO", "hello ", "x" * 3000, 7, None, ["hello"], {"t": 1}])
            return Case("unknown_type", [pack({"v": 1, "type": name, "rid": r})], frozenset({E.UNKNOWN_TYPE}),
                        "unknown message type", r)
        reply = self.rng.choice([P.Ok(rid=r), P.BatchAck(rid=r, batch_id="b", duplicate=False, seq=0),
                                 P.HeartbeatAck(rid=r, model=None), P.Error(rid=r, code=E.INTERNAL, message="x")])
        return Case("unknown_type", [P.encode(reply)], frozenset({E.UNKNOWN_TYPE}), "is a reply, not a request", r)

    def wrong_field(self):
        fields, nblobs = self.request()
        name = self.rng.choice([k for k in fields if k not in ("v", "type")] + ["zz_extra"])
        how = self.rng.randrange(4)
        if how == 0 and name in fields:
            del fields[name]
        else:
            fields[name] = self.rng.choice(["x", -1, 2**64 - 1, 1.5, float("nan"), None, True, [1], {"a": 1}, "",
                                            "bad id!", "y" * 5000, [-1] * 3, list(range(2000))])
        case = self.from_oracle("wrong_field", pack(fields), self.blobs_for(fields, nblobs), name)
        if case is not None:
            assert case.codes == {E.BAD_MESSAGE}, (fields, case)
            case.rid = fields["rid"] if name != "rid" else 0
        return case

    def not_a_map(self):
        value = self.rng.choice([[1, 2], 5, "hello", None, 1.5, True, [{"v": 1, "type": "hello"}]])
        return Case("not_a_map", [pack(value)], frozenset({E.BAD_MESSAGE}), "must be a map", 0)

    def huge_declared(self):
        head = b"\x83\xa1v\x01\xa4type\xa5hello\xa9worker_id"
        choice = self.rng.randrange(10)
        if choice >= 8:  # nested 1020 deep, just inside msgpack's stack: the error must quote it in short
            key = b"\xa1v" if choice == 8 else b"\xa4type"
            header = b"\x83\xa1v\x01\xa4type\xa5hello" + key + b"\x91" * 1020 + b"\x01"
            return self.from_oracle("huge_declared", header, [], "[[[[...]]]]")
        if choice == 7:  # a valid-looking header far above MAX_HEADER_BYTES
            r = self.rid()
            header = pack({"v": 1, "type": "hello", "rid": r, "worker_id": "w", "board_size": 5, "host": "h" * 70_000})
            return Case("huge_declared", [header], frozenset({E.TOO_LARGE}), "header of", 0)
        header = [
            b"\xdf\xff\xff\xff\xff\xa1v\x01",  # map32 of 4 G entries
            head + b"\xdb\xff\xff\xff\xffabc",  # str32 of 4 GiB
            b"\xdd\xff\xff\xff\xff\x01\x02",  # array32 of 4 G items
            head + b"\xc6\xff\xff\xff\xff\x00",  # bin32 of 4 GiB
            head + b"\xc9\xff\xff\xff\xff\x01",  # ext32 of 4 GiB
            b"\x81\xa1x" + b"\x91" * 5000 + b"\xc0",  # 5000 nested arrays
            b"\x82\xa1v\x01\xa1x" + b"\x81\xa1a" * 3000 + b"\xc0",  # 3000 nested maps
        ][choice]
        return self.from_oracle("huge_declared", header, [], "not valid msgpack")

    def blob_count(self):
        fields, nblobs = self.request()
        count = self.rng.choice([n for n in (0, 1, 2, 3, 64) if n != nblobs])
        return self.from_oracle("blob_count", pack(fields), [b"b" * self.rng.randrange(8) for _ in range(count)],
                                "blob frame")

    def flip_blob(self):
        blob = bytearray(self.base.stored_blob)
        for _ in range(self.rng.randint(1, 8)):
            blob[self.rng.randrange(len(blob))] ^= 1 << self.rng.randrange(8)
        try:  # a flip lz4 ignores (the low bits of the last token) leaves a valid batch: draw again
            decode_batch(bytes(blob), max_bytes=self.base.max_batch_bytes)
            return None
        except RecordError:
            pass
        return self.with_blob("flip_blob", bytes(blob), {E.BAD_BATCH}, "undecodable batch")

    def truncate_blob(self):
        blob = self.base.stored_blob
        return self.with_blob("truncate_blob", blob[: self.rng.randrange(7, len(blob))], {E.BAD_BATCH}, "lz4")

    def bad_counts(self):
        s = self.base.stored
        field = self.rng.choice(["games", "positions", "generations"])
        value = {"games": self.rng.choice([s.games + 1, s.games + 1000, 2**62]),
                 "positions": self.rng.choice([0, s.positions + 1, s.positions - 1, 2**62]),
                 "generations": self.rng.choice([[], [0, 1], [1]])}[field]
        if field == "positions" and value == s.positions:
            return None
        return self.with_blob("bad_counts", self.base.stored_blob, {E.BAD_BATCH}, "header says", **{field: value})

    def broken_msgpack(self):
        payload, choice = self.payload, self.rng.randrange(4)
        games = payload.index(b"\xa1g") + 3  # where the first game's map begins
        inner = [payload[: self.rng.randrange(1, len(payload))],  # cut short
                 payload + self.rng.randbytes(self.rng.randint(1, 16)),  # trailing garbage
                 b"\x82\xa1v\x01\xa1g\xdd\xff\xff\xff\xff",  # 4 G games declared
                 payload[:games] + b"\xc1" + payload[games:]][choice]  # a byte msgpack never uses, as a game
        return self.with_blob("broken_msgpack", lz4.frame.compress(inner), {E.BAD_BATCH}, "undecodable batch")

    def bomb(self):
        declared = self.rng.random() < 0.5
        return self.with_blob("bomb", self.bombs[0 if declared else 1], {E.BAD_BATCH},
                              "declares" if declared else "more than the limit")

    def oversize_blob(self):
        blob = b"\x04\x22\x4d\x18" + bytes(self.base.max_batch_bytes + self.rng.randint(1, 64 << 10))
        return self.with_blob("oversize_blob", blob, {E.TOO_LARGE}, "above the limit")

    def board_size(self):
        w = self.base.worker_id
        if self.rng.random() < 0.25:
            return self.submit("board_size", [game([0, 1], komi=5.5, worker_id=w)], {E.BAD_BATCH}, "komi 5.5")
        size = self.rng.choice([7, 9, 19])
        return self.submit("board_size", [game([0, 1], size=size, worker_id=w)], {E.BAD_BATCH}, f"board size {size}")

    def generation(self):
        g = self.rng.randrange(1, 10**9)
        return self.submit("generation", [game([0, 1], worker_id=self.base.worker_id, generation=g)],
                           {E.WRONG_GENERATION}, f"generation {g}, which was never published")

    def illegal_move(self):
        a, b = self.rng.sample(range(25), 2)
        which = self.rng.randrange(3)
        moves, words = [([a, b, a], "occupied"), ([a, b, 25, 25, a], "game over"), ([a, b, 0], "above 25")][which]
        record = game(moves, worker_id=self.base.worker_id)
        if which == 2:  # off the board: GameRecord refuses to build it, so change the array behind its back
            record.moves = np.array([a, b, 26 + a], dtype=np.int16)
        return self.submit("illegal_move", [record], {E.BAD_BATCH}, words)

    def foreign_games(self):
        return self.submit("foreign_games", [game([0, 1], worker_id="someone-else")], {E.BAD_BATCH}, "played by worker")

    def replayed(self):
        r = self.rid()
        blob = self.base.stored_blob if self.rng.random() < 0.5 else self.rng.randbytes(32)  # the id decides
        msg = self.base.stored.model_copy(update={"rid": r})
        return Case("replayed", [P.encode(msg), blob], rid=r, reply="batch_ack", duplicate_of=self.base.stored_seq)

    def unknown_worker(self):
        r = self.rid()
        msg = P.Heartbeat(rid=r, worker_id=self.fresh_id("ghost"))
        return Case("unknown_worker", [P.encode(msg)], frozenset({E.UNKNOWN_WORKER}), "has not said hello", r)

    def hello_board(self):
        r, size = self.rid(), self.rng.choice([7, 9, 13, 19])
        msg = P.Hello(rid=r, worker_id=self.fresh_id(), board_size=size)
        return Case("hello_board", [P.encode(msg)], frozenset({E.BAD_MESSAGE}), f"board size {size}", r)

    def hello_random(self):
        r = self.rid()
        msg = P.Hello(rid=r, worker_id=self.fresh_id(), board_size=5, host=self.fresh_id("host"))
        return Case("hello_random", [P.encode(msg)], rid=r, reply="welcome")

    def bad_publish(self):
        r, junk = self.rid(), self.rng.randbytes(self.rng.randrange(1, 512))
        if self.rng.random() < 0.5:
            msg = P.PublishModel(rid=r, generation=0, sha256=hashlib.sha256(junk).hexdigest())
            return Case("bad_publish", [P.encode(msg), junk], frozenset({E.STALE_GENERATION}), "not above", r)
        msg = P.PublishModel(rid=r, generation=self.rng.randrange(1, 10**6), sha256=hashlib.sha256(junk).hexdigest())
        return Case("bad_publish", [P.encode(msg), junk], frozenset({E.BAD_MODEL}), "model file refused", r)

    def no_model(self):
        r, g = self.rid(), self.rng.randrange(1, 10**9)
        return Case("no_model", [P.encode(P.GetModel(rid=r, generation=g))], frozenset({E.NO_MODEL}),
                    f"generation {g} was never published", r)


CATEGORIES = {
    "random_bytes": 10, "truncated": 6, "wrong_version": 6, "unknown_type": 4, "wrong_field": 10, "not_a_map": 2,
    "huge_declared": 4, "blob_count": 4, "flip_blob": 6, "truncate_blob": 4, "bad_counts": 4, "broken_msgpack": 4,
    "bomb": 1, "oversize_blob": 0.5, "board_size": 4, "generation": 4, "illegal_move": 6, "foreign_games": 2,
    "replayed": 5, "unknown_worker": 3, "hello_board": 2, "hello_random": 6, "bad_publish": 2, "no_model": 2,
}
