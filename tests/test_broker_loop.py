"""The broker's loop driven by hand in-process (real sockets): group commit, storage and handler failures."""

from __future__ import annotations

import pytest
import zmq
from broker_helpers import batch, play_games, publish, tiny_settings
from procs import router_endpoint, tiny_config

from azgo_broker.server import Broker
from azgo_core import protocol as P


@pytest.fixture
def loop(tmp_path):
    """(broker, DEALER connected to it); the test calls ``serve`` to run one round."""
    config = tiny_config(tmp_path)
    settings = tiny_settings(config)
    broker = Broker(settings)
    broker.models.publish(*_publish_args(settings))
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(router_endpoint(config))
    yield broker, sock
    sock.close()
    broker.close()


def _publish_args(settings):
    msg, blobs = publish(settings, 0)
    return msg.generation, msg.sha256, blobs[0]


def send(sock, msg: P.Message, blobs=(), rid: int = 1) -> None:
    sock.send_multipart([P.encode(msg.model_copy(update={"rid": rid})), *blobs])


def serve(broker: Broker, expect: int) -> None:
    """Run rounds until ``expect`` requests have been read (they arrive asynchronously)."""
    seen = 0
    original = broker.dispatch

    def counting(frames):
        nonlocal seen
        seen += 1
        original(frames)

    broker.dispatch = counting
    try:
        while seen < expect:
            assert broker.router.poll(10_000), f"only {seen} of {expect} requests arrived"
            broker.serve_round()
        broker.requests.finish_checks(wait=10)  # batches are checked beside the loop
        broker.requests.commit_round()
    finally:
        broker.dispatch = original


def replies(sock, n: int) -> list[P.Message]:
    out = []
    for _ in range(n):
        assert sock.poll(10_000), "no reply"
        out.append(P.decode(sock.recv_multipart()[0]))
    return out


def introduce(broker: Broker, sock, worker_id: str) -> None:
    """Say hello as ``worker_id`` on ``sock``: only then may it submit batches."""
    send(sock, P.Hello(worker_id=worker_id, board_size=broker.settings.board.size), rid=99)
    serve(broker, 1)
    assert isinstance(replies(sock, 1)[0], P.Welcome)


def test_one_fsync_acks_every_batch_of_a_round(loop, monkeypatch):
    broker, sock = loop
    introduce(broker, sock, "gc-w")
    games = play_games(broker.settings, 1, "gc-w")
    for i in range(5):
        send(sock, *batch(f"gc{i}", "gc-w", games), rid=10 + i)
    send(sock, *batch("gc0", "gc-w", games), rid=20)  # the same batch again within the round
    syncs = []
    monkeypatch.setattr("azgo_broker.store.os.fsync", lambda fd: syncs.append(fd))
    # one round by hand, as serve_round does it: read all six, then commit
    frames = []
    while len(frames) < 6:
        assert broker.router.poll(10_000), f"only {len(frames)} of 6 requests arrived"
        frames.append(broker.router.recv_multipart())
    for f in frames:
        broker.dispatch(f)
    broker.requests.finish_checks(wait=10)  # checked beside the loop, then stored
    assert not broker.requests.checking and sock.poll(200) == 0  # nothing acked before the commit
    broker.requests.commit_round()
    acks = replies(sock, 6)
    assert len(syncs) == 1  # one fsync for the whole round
    assert sorted(a.rid for a in acks) == [10, 11, 12, 13, 14, 20]
    assert all(isinstance(a, P.BatchAck) for a in acks)
    by_rid = {a.rid: a for a in acks}
    assert by_rid[20].duplicate and by_rid[20].seq == by_rid[10].seq
    assert [e.header.batch_id for e in broker.store.entries] == [f"gc{i}" for i in range(5)]


def test_storage_failure_is_reported_and_nothing_is_stored(loop, monkeypatch):
    broker, sock = loop
    introduce(broker, sock, "st-w")
    games = play_games(broker.settings, 1, "st-w")
    msg, blobs = batch("disk-full", "st-w", games)

    def enospc(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("azgo_broker.store.os.fsync", enospc)
    send(sock, msg, blobs, rid=3)
    serve(broker, 1)
    (reply,) = replies(sock, 1)
    assert isinstance(reply, P.Error) and reply.code == P.ErrorCode.STORAGE and reply.rid == 3
    assert "disk-full not stored" in reply.message and "No space left" in reply.message
    assert broker.store.seq_of("disk-full") is None and broker.store.total_games == 0
    monkeypatch.undo()
    send(sock, msg, blobs, rid=4)  # the worker retries once the disk has room
    serve(broker, 1)
    (ack,) = replies(sock, 1)
    assert isinstance(ack, P.BatchAck) and not ack.duplicate and ack.rid == 4


def test_a_failing_handler_answers_internal_and_the_loop_goes_on(loop):
    broker, sock = loop

    def broken(msg, blobs, identity):
        raise RuntimeError("boom")

    broker.requests.table[P.GetModel] = broken
    send(sock, P.GetModel(), rid=7)
    send(sock, P.Hello(worker_id="after", board_size=5), rid=8)
    serve(broker, 2)
    internal, welcome = replies(sock, 2)
    assert isinstance(internal, P.Error) and internal.code == P.ErrorCode.INTERNAL and internal.rid == 7
    assert internal.message == "RuntimeError: boom"
    assert isinstance(welcome, P.Welcome) and welcome.rid == 8


def test_a_reply_to_a_vanished_peer_is_dropped_quietly(loop):
    broker, sock = loop
    broker.replies.send(b"\x00no-such-peer", P.Ok())  # ROUTER_MANDATORY: EHOSTUNREACH, logged, not raised
    send(sock, P.GetModel(), rid=9)
    serve(broker, 1)
    (reply,) = replies(sock, 1)
    assert isinstance(reply, P.ModelData) and reply.rid == 9


def test_a_second_broker_on_the_same_data_dir_is_refused(loop):
    broker, _ = loop
    with pytest.raises(OSError, match="is in use by another broker"):
        Broker(broker.settings)
