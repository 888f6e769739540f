"""The wire protocol: every message round-trips, and bad headers get errors that name the problem."""

from __future__ import annotations

import msgpack
import pytest

from azgo_core import protocol as P

INFO = P.ModelInfo(generation=3, sha256="ab" * 32, size=1000, parent_generation=2, training_steps=50)

EXAMPLES = [
    P.Hello(worker_id="gpu1-0", host="gpu1", gpu="H200", code_version="0.1.0", pid=4, board_size=9),
    P.Heartbeat(worker_id="w", state=P.WorkerState.SYNCING, generation=3, games_per_s=1.5, error=""),
    P.GetModel(), P.GetModel(generation=2),
    P.SubmitBatch(batch_id="w-1", worker_id="w", games=100, positions=8000, generations=[2, 3]),
    P.GetSamples(after=-1, window=50_000),
    P.PublishModel(generation=4, sha256="cd" * 32),
    P.LearnerReport(step=10, generation=3, samples_trained=1280, positions_seen=400, samples_per_s=100.0,
                    loss_policy=2.0, loss_value=0.9, loss_total=2.9, waiting=True),
    P.EvalReport(evaluator_id="evaluator", anchor="random", games_total=40, matches_total=4, best_generation=-1,
                 ratings=[P.Rating(player="000003", generation=3, elo=412.5, low=300.0, high=525.0, games=20),
                          P.Rating(player="random", elo=0.0, low=0.0, high=0.0, games=10)]),
    P.Welcome(broker_id="b", model=INFO, heartbeat_interval=1.0, liveness=3),
    P.Welcome(broker_id="b", model=None, heartbeat_interval=1.0, liveness=3),
    P.HeartbeatAck(model=INFO), P.ModelData(model=INFO),
    P.BatchAck(batch_id="w-1", duplicate=True, seq=7),
    P.Samples(batches=[P.StoredBatch(seq=1, games=2, positions=30)], more=False, total_positions=30, total_games=2,
              last_seq=1),
    P.ModelAck(model=INFO), P.Ok(), P.Error(code=P.ErrorCode.BAD_BATCH, message="game 3: move 12 is illegal"),
    P.Announce(model=INFO),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.type)
def test_round_trip(message):
    frame = P.encode(message.model_copy(update={"rid": 42}))
    back = P.decode(frame)
    assert back == message.model_copy(update={"rid": 42})
    assert msgpack.unpackb(frame)["v"] == P.PROTOCOL_VERSION  # the version travels in every message


def test_every_request_has_a_reply_type():
    assert set(P.REPLIES) == set(P.REQUESTS)
    assert {type(m).model_fields["type"].default for m in EXAMPLES} == set(P.BY_TYPE)


def raw(**fields) -> bytes:
    return msgpack.packb(fields)


@pytest.mark.parametrize(
    "frame, code, words",
    [
        (b"\xc1garbage", P.ErrorCode.BAD_MESSAGE, "not valid msgpack"),
        (msgpack.packb([1, 2]), P.ErrorCode.BAD_MESSAGE, "must be a map"),
        (raw(type="hello", rid=9), P.ErrorCode.BAD_VERSION, "no protocol version"),
        (raw(v=2, type="hello", rid=9), P.ErrorCode.BAD_VERSION, "protocol version 2"),
        (raw(v=1, type="launch_missiles", rid=9), P.ErrorCode.UNKNOWN_TYPE, "launch_missiles"),
        (raw(v=1, type="hello", rid=9, worker_id="a", board_size=3), P.ErrorCode.BAD_MESSAGE, "board_size"),
        (raw(v=1, type="hello", rid=9, worker_id="../etc", board_size=9), P.ErrorCode.BAD_MESSAGE, "worker_id"),
        (raw(v=1, type="hello", rid=9, board_size=9), P.ErrorCode.BAD_MESSAGE, "worker_id"),
        (raw(v=1, type="hello", rid=9, worker_id="a", board_size=9, admin=True), P.ErrorCode.BAD_MESSAGE, "admin"),
        (raw(v=1, type="get_model", rid=9, generation="7"), P.ErrorCode.BAD_MESSAGE, "generation"),
        (raw(v=1, type="heartbeat", rid=9, worker_id="a", state="Offline"), P.ErrorCode.BAD_MESSAGE, "state"),
        (raw(v=1, type="heartbeat", rid=9, worker_id="a", games_per_s=float("nan")), P.ErrorCode.BAD_MESSAGE, "games_per_s"),
        (raw(v=1, type="publish_model", rid=9, generation=1, sha256="xyz"), P.ErrorCode.BAD_MESSAGE, "sha256"),
        (b"\x81" + b"\xda\xff\xff" + b"a" * 70_000, P.ErrorCode.TOO_LARGE, "header of"),
    ],
)
def test_bad_headers_are_named(frame, code, words):
    with pytest.raises(P.ProtocolError) as err:
        P.decode(frame)
    assert err.value.code == code and words in str(err.value)
    if b"rid" in frame:  # a readable request id comes back, so the error reaches the waiter that sent it
        assert P.error_reply(err.value).rid == 9


def test_blob_count_is_checked():
    frame = P.encode(P.SubmitBatch(batch_id="b", worker_id="w", games=1, positions=1, generations=[0]))
    assert P.decode(frame, blobs=1).batch_id == "b"
    with pytest.raises(P.ProtocolError, match="expected 1 blob"):
        P.decode(frame, blobs=0)
    samples = next(m for m in EXAMPLES if isinstance(m, P.Samples))
    assert P.decode(P.encode(samples), blobs=5) == samples  # Samples: any number


def test_generation_ids_sort():
    ids = [P.generation_id(g) for g in (0, 9, 10, 123, 999_999)]
    assert ids == sorted(ids) and ids[3] == "000123"
