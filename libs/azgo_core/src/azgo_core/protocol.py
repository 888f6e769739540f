"""The wire protocol between the broker, the learner and self-play workers, defined once.

Every ZeroMQ message is a header frame followed by zero or more blob frames:

    header   msgpack map: {"v": PROTOCOL_VERSION, "type": <name>, "rid": <request id>, ...fields}
    blobs    raw bytes: a game batch (``records.encode_batch``), a model file, stored batches

Requests go from a DEALER (worker, learner, tools) to the broker's ROUTER; each gets exactly
one reply carrying the same ``rid``: the reply named in ``REPLIES`` or an ``Error``. Model
announcements go out on the broker's PUB socket as ``[ANNOUNCE_TOPIC, header]``.

    request          blobs   reply                blobs
    Hello            0       Welcome              0
    Heartbeat        0       HeartbeatAck         0
    GetModel         0       ModelData            1  (the model file)
    SubmitBatch      1       BatchAck             0  (the batch, lz4 or plain msgpack)
    GetSamples       0       Samples              n  (stored batches, oldest first)
    PublishModel     1       ModelAck             0  (the model file)
    LearnerReport    0       Ok                   0
    EvalReport       0       Ok                   0  (the evaluator's Elo ratings)

``decode`` checks the version before anything else, bounds what a hostile peer can make us
allocate (a header is at most ``MAX_HEADER_BYTES``, holds no bin or ext, its arrays and maps
are short, and msgpack refuses nesting deeper than its stack), and raises ``ProtocolError``
with a code (``ErrorCode``) and a message naming the problem; the broker sends that back as an
``Error`` reply. Messages quote what the peer sent only in short (``MAX_QUOTE`` characters),
so every error fits an ``Error`` reply whatever the input.
"""

from __future__ import annotations

import reprlib
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

import msgpack
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .coords import MAX_SIZE, MIN_SIZE

PROTOCOL_VERSION = 1
ANNOUNCE_TOPIC = b"model"
MAX_HEADER_BYTES = 64 * 1024  # headers carry only control fields; blobs travel in their own frames
MAX_ID_LEN = 128
MAX_TEXT = 4096  # characters of a free-text field (an error message, a host name)
MAX_QUOTE = 80  # characters of a peer's value quoted in an error message
MAX_SAMPLES_BYTES = 64 << 20  # most bytes one Samples reply may be asked for

ID_CHARS = "A-Za-z0-9_.:@-"
"""The characters of an id (worker, batch, request), as a regex character class's body: the one
home of the id pattern (outbox files, worker-id sanitizing and SGF names use it too)."""
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LEN, pattern=rf"^[{ID_CHARS}]+$")]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Count = Annotated[int, Field(ge=0, lt=2**63)]
Rate = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class ErrorCode(StrEnum):
    BAD_MESSAGE = "bad_message"  # not msgpack, not a map, missing or wrong fields, wrong frame count
    BAD_VERSION = "bad_version"  # protocol version other than ours
    UNKNOWN_TYPE = "unknown_type"  # a type name we do not know, or a reply sent as a request
    UNKNOWN_WORKER = "unknown_worker"  # heartbeat or batch before hello: say hello again
    BAD_BATCH = "bad_batch"  # batch refused: schema, sizes, board size, illegal move...
    WRONG_GENERATION = "wrong_generation"  # batch played with a generation the broker never published
    NO_MODEL = "no_model"  # no generation published yet, or not that one
    BAD_MODEL = "bad_model"  # published model refused: corrupt, wrong board size, sha256 mismatch
    STALE_GENERATION = "stale_generation"  # publish of a generation not above the current one
    TOO_LARGE = "too_large"  # a frame above the configured limit
    STORAGE = "storage"  # the broker could not store (disk full...): retry later, nothing was stored
    INTERNAL = "internal"  # a bug in the broker; the message names the exception
    UNAUTHORIZED = "unauthorized"  # the client's CURVE key was removed from the broker's allow-list


class WorkerState(StrEnum):
    """What the status table shows; Offline is the broker's verdict, never reported by a worker."""

    ACTIVE = "Active"
    SYNCING = "Syncing"
    ERROR = "Error"
    OFFLINE = "Offline"


class ProtocolError(ValueError):
    def __init__(self, code: ErrorCode, message: str, rid: int = 0):
        super().__init__(f"{code.value}: {message}")
        self.code, self.message, self.rid = code, message, rid


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    v: Literal[1] = PROTOCOL_VERSION
    rid: Count = 0
    """Request id, chosen by the requester and echoed in the reply."""
    blobs: ClassVar[int] = 0
    """How many blob frames follow the header (-1: any number)."""


# --- requests ------------------------------------------------------------------------------


class Hello(Message):
    type: Literal["hello"] = "hello"
    worker_id: Id
    role: Literal["selfplay", "learner", "tool"] = "selfplay"
    host: Text = ""
    gpu: Text = ""
    code_version: Text = ""
    pid: Count = 0
    board_size: int = Field(ge=MIN_SIZE, le=MAX_SIZE)
    parallel_games: int = Field(0, ge=0, le=4096)
    """Games a self-play worker plays at once (0: not a self-play worker, or not said)."""


class Heartbeat(Message):
    type: Literal["heartbeat"] = "heartbeat"
    worker_id: Id
    state: Literal[WorkerState.ACTIVE, WorkerState.SYNCING, WorkerState.ERROR] = WorkerState.ACTIVE
    generation: int = Field(-1, ge=-1)
    """Generation the worker plays with (-1: none yet)."""
    games_total: Count = 0
    positions_total: Count = 0
    games_per_s: Rate = 0.0
    positions_per_s: Rate = 0.0
    nn_evals_per_s: Rate = 0.0
    outbox: Count = 0
    """Batches waiting for an ack."""
    error: Text = ""
    """The exception, when state is Error."""


class GetModel(Message):
    type: Literal["get_model"] = "get_model"
    generation: int | None = Field(None, ge=0)
    """None: the current generation."""


class BatchHeader(BaseModel):
    """What a batch of finished games says of itself, one type wherever the batch goes: the
    self-play outbox file, the ``SubmitBatch`` request (which is one) and the broker's stored
    record carry these fields and validate them here, once, where they enter."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    batch_id: Id
    """Unique per batch and kept across resends: the broker stores a batch id once."""
    worker_id: Id
    games: int = Field(ge=1)
    positions: Count
    generations: list[Annotated[int, Field(ge=0)]] = Field(max_length=1024)
    """Model generations the games were played with."""


class SubmitBatch(Message, BatchHeader):
    """A batch of games to store: its header's fields, and the batch itself as the blob."""

    type: Literal["submit_batch"] = "submit_batch"
    blobs: ClassVar[int] = 1

    @property
    def header(self) -> BatchHeader:
        """The batch's header alone, without the request's own fields (already validated)."""
        return BatchHeader.model_construct(**{name: getattr(self, name) for name in BatchHeader.model_fields})


class GetSamples(Message):
    type: Literal["get_samples"] = "get_samples"
    after: int = Field(-1, ge=-1)
    """Sequence number of the last stored batch the learner has (-1: none)."""
    window: int = Field(ge=1)
    """Return at most the batches holding the last ``window`` positions."""
    max_bytes: int = Field(16 << 20, ge=1 << 10, le=MAX_SAMPLES_BYTES)
    """Stop adding batches past this many bytes (at least one is always sent)."""


class PublishModel(Message):
    type: Literal["publish_model"] = "publish_model"
    blobs: ClassVar[int] = 1
    generation: int = Field(ge=0)
    sha256: Sha256
    """sha256 of the model file (the blob)."""


Share = Annotated[float | None, Field(ge=0, le=1)]


class SelfPlayHealth(BaseModel):
    """``azgo_core.health.Health`` of a set of self-play games (None: no game to count)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    generation: int | None = Field(None, ge=0)
    """The generation the games were played with; None for the recent window."""
    games: Count
    black_win_share: Share = None
    resigned_share: Share = None
    mean_moves: float | None = Field(None, ge=0, allow_inf_nan=False)
    white_passes_first_share: Share = None
    first_pass_move: float | None = Field(None, ge=0, allow_inf_nan=False)
    false_resignation_rate: Share = None


MAX_HEALTH_GENERATIONS = 64  # per-generation health rows in one report (the newest)


class LearnerReport(Message):
    type: Literal["learner_report"] = "learner_report"
    step: Count
    generation: int = Field(ge=-1)
    samples_trained: Count
    positions_seen: Count
    samples_per_s: Rate
    loss_policy: float = Field(allow_inf_nan=True)
    loss_value: float = Field(allow_inf_nan=True)
    loss_total: float = Field(allow_inf_nan=True)
    waiting: bool = False
    """True while the learner waits for games (the sample ratio is at its bound)."""
    health: SelfPlayHealth | None = None
    """Training health over the learner's recent games."""
    health_by_generation: list[SelfPlayHealth] = Field([], max_length=MAX_HEALTH_GENERATIONS)
    health_warnings: list[Text] = Field([], max_length=8)
    """A collapse in the recent games, in words (one colour winning, games cut short)."""


class Rating(BaseModel):
    """One player's Elo from the evaluator's fit: a generation, or an anchor (generation None)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    player: Id
    """'000012' for a generation, else the anchor's name ('random', 'gnugo-l1')."""
    generation: int | None = Field(None, ge=0)
    elo: float = Field(allow_inf_nan=False)
    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)
    """The confidence interval of elo."""
    games: Count


MAX_RATINGS = 256  # ratings per EvalReport: the newest generations and the anchors


class EvalReport(Message):
    type: Literal["eval_report"] = "eval_report"
    evaluator_id: Id
    anchor: Id
    """The player held at Elo 0 (normally 'random')."""
    ratings: list[Rating] = Field(max_length=MAX_RATINGS)
    games_total: Count
    """Evaluation games played so far (all of them, since the evaluator's data began)."""
    matches_total: Count
    best_generation: int = Field(-1, ge=-1)
    """With gating: the newest accepted generation (-1: gating off or none yet)."""


# --- replies -------------------------------------------------------------------------------


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    generation: int = Field(ge=0)
    sha256: Sha256
    size: Count
    parent_generation: int | None = None
    training_steps: Count = 0
    samples_seen: Count = 0
    created: Text = ""


class Welcome(Message):
    type: Literal["welcome"] = "welcome"
    broker_id: Text
    model: ModelInfo | None
    heartbeat_interval: float = Field(gt=0)
    liveness: int = Field(ge=1)


class HeartbeatAck(Message):
    type: Literal["heartbeat_ack"] = "heartbeat_ack"
    model: ModelInfo | None


class ModelData(Message):
    type: Literal["model_data"] = "model_data"
    blobs: ClassVar[int] = 1
    model: ModelInfo


class BatchAck(Message):
    type: Literal["batch_ack"] = "batch_ack"
    batch_id: Id
    duplicate: bool
    """True when the batch was stored before: acked again, not stored twice."""
    seq: Count
    """Its sequence number in the game store."""


class StoredBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    seq: Count
    games: int = Field(ge=1)
    positions: Count


class Samples(Message):
    type: Literal["samples"] = "samples"
    blobs: ClassVar[int] = -1
    batches: list[StoredBatch]
    """One entry per blob frame, oldest first."""
    more: bool
    """True when newer batches remain (ask again with after = the last seq)."""
    total_positions: Count
    total_games: Count
    last_seq: int = Field(ge=-1)


class ModelAck(Message):
    type: Literal["model_ack"] = "model_ack"
    model: ModelInfo


class Ok(Message):
    type: Literal["ok"] = "ok"


class Error(Message):
    type: Literal["error"] = "error"
    code: ErrorCode = Field(strict=False)
    message: Text


class Announce(Message):
    """On the PUB socket: a new current generation."""

    type: Literal["announce"] = "announce"
    model: ModelInfo


REQUESTS = (Hello, Heartbeat, GetModel, SubmitBatch, GetSamples, PublishModel, LearnerReport, EvalReport)
REPLIES = {
    Hello: Welcome, Heartbeat: HeartbeatAck, GetModel: ModelData, SubmitBatch: BatchAck,
    GetSamples: Samples, PublishModel: ModelAck, LearnerReport: Ok, EvalReport: Ok,
}
_ALL = (*REQUESTS, Welcome, HeartbeatAck, ModelData, BatchAck, Samples, ModelAck, Ok, Error, Announce)
BY_TYPE: dict[str, type[Message]] = {m.model_fields["type"].default: m for m in _ALL}
_ADAPTERS = {name: TypeAdapter(cls) for name, cls in BY_TYPE.items()}


def encode(message: Message) -> bytes:
    """The header frame of ``message``."""
    return msgpack.packb(message.model_dump(mode="json"), use_bin_type=True)


_QUOTER = reprlib.Repr()
_QUOTER.maxlevel, _QUOTER.maxlist, _QUOTER.maxdict = 3, 8, 8
_QUOTER.maxstring = _QUOTER.maxlong = _QUOTER.maxother = MAX_QUOTE


def quote(value: object, limit: int = MAX_QUOTE) -> str:
    """A short ``repr(value)`` (three levels deep at most, cut to ``limit`` characters): a peer's value
    named in an error message. The peer may send lists nested 1000 deep: a plain repr would recurse past
    Python's limit."""
    text = _QUOTER.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def field_errors(err: ValidationError) -> str:
    """A validation error in one line that names the fields (at most five) and quotes little."""
    parts = []
    for e in err.errors()[:5]:
        path = ".".join(str(p)[:MAX_QUOTE] for p in e["loc"]) or "(message)"  # an extra key is the peer's text
        parts.append(f"{path}: {e['msg'][:MAX_QUOTE * 4]}")
    return "; ".join(parts)


def decode(frame: bytes, blobs: int | None = None) -> Message:
    """Parse a header frame; ``blobs`` (when given) is the number of blob frames that came with it.

    Raises ``ProtocolError`` naming the problem; ``rid`` on the error is the sender's request id
    when it could be read, so the error reply reaches the right waiter.
    """
    if len(frame) > MAX_HEADER_BYTES:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"header of {len(frame)} bytes, above {MAX_HEADER_BYTES}")
    try:
        data = msgpack.unpackb(
            frame, raw=False, strict_map_key=True, max_str_len=MAX_HEADER_BYTES, max_bin_len=0,
            max_array_len=4096, max_map_len=64, max_ext_len=0,
        )
    except (ValueError, msgpack.UnpackException) as e:
        detail = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"header is not valid msgpack ({detail})") from None
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"header must be a map, got {type(data).__name__}")
    rid = data.get("rid") if type(data.get("rid")) is int and 0 <= data["rid"] < 2**63 else 0
    if "v" not in data:
        raise ProtocolError(ErrorCode.BAD_VERSION, "header has no protocol version 'v'", rid)
    if data["v"] != PROTOCOL_VERSION or type(data["v"]) is not int:
        raise ProtocolError(ErrorCode.BAD_VERSION, f"protocol version {quote(data['v'])}, this peer speaks {PROTOCOL_VERSION}",
                            rid)
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in _ADAPTERS:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {quote(kind)}", rid)
    try:
        message = _ADAPTERS[kind].validate_python(data)
    except ValidationError as e:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{kind}: {field_errors(e)}", rid) from None
    want = type(message).blobs
    if blobs is not None and want >= 0 and blobs != want:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{kind}: expected {want} blob frame(s), got {blobs}", rid)
    return message


def error(code: ErrorCode, message: str, rid: int = 0) -> Error:
    """An ``Error`` reply; a message over ``MAX_TEXT`` characters is cut (never refused: it may quote a peer)."""
    if len(message) > MAX_TEXT:
        message = message[: MAX_TEXT - 3] + "..."
    return Error(rid=rid, code=code, message=message)


def error_reply(err: ProtocolError) -> Error:
    return error(err.code, err.message, err.rid)


def generation_id(generation: int) -> str:
    """Sortable generation id used in file names, SGF player names and metric labels."""
    return f"{generation:06d}"
