"""BrokerClient against a real ROUTER socket: replies matched by request id, timeouts that replace
the socket (Lazy Pirate), error replies raised, and the reconnect back-off."""

from __future__ import annotations

import pytest
from procs import free_ports
from zmq_router import Router

from azgo_core import protocol as P
from azgo_runtime.client import Backoff, BrokerClient, BrokerUnavailable, RemoteError


@pytest.fixture
def port():
    return free_ports(1)[0]


def test_reply_matched_by_rid_and_blobs_returned(port):
    def respond(m, blobs):
        stale = P.encode(P.Ok(rid=m.rid + 1000))  # an answer nobody waits for comes first
        return [[stale], [P.encode(P.ModelAck(rid=m.rid, model=P.ModelInfo(generation=1, sha256="a" * 64, size=len(blobs[0]))))]]

    server = Router(port, respond)
    server.start()
    client = BrokerClient(f"tcp://127.0.0.1:{port}", timeout=5)
    try:
        reply = client.request(P.PublishModel(generation=1, sha256="a" * 64), [b"12345"])
        assert isinstance(reply.message, P.ModelAck) and reply.message.model.size == 5
        assert server.seen[0].rid == reply.rid and reply.rid > 0
        assert client.bytes_out > 5 and client.bytes_in > 0
    finally:
        client.close()
        server.close()


def test_error_reply_raises_remote_error(port):
    server = Router(port, lambda m, b: [[P.encode(P.Error(rid=m.rid, code=P.ErrorCode.NO_MODEL, message="none yet"))]])
    server.start()
    client = BrokerClient(f"tcp://127.0.0.1:{port}", timeout=5)
    try:
        with pytest.raises(RemoteError) as err:
            client.request(P.GetModel())
        assert err.value.code is P.ErrorCode.NO_MODEL and "none yet" in str(err.value)
    finally:
        client.close()
        server.close()


def test_silence_raises_and_replaces_the_socket(port):
    client = BrokerClient(f"tcp://127.0.0.1:{port}", timeout=0.3)  # nobody listens
    first = client.sock
    with pytest.raises(BrokerUnavailable, match="no reply"):
        client.request(P.GetModel())
    assert client.sock is not first and client.connects == 2 and not client.pending
    # the broker comes up later: the fresh socket reaches it
    server = Router(port, lambda m, b: [[P.encode(P.Ok(rid=m.rid))]])
    server.start()
    try:
        assert isinstance(client.request(P.LearnerReport(step=0, generation=0, samples_trained=0, positions_seen=0,
                                                         samples_per_s=0.0, loss_policy=0.0, loss_value=0.0,
                                                         loss_total=0.0), timeout=5).message, P.Ok)
    finally:
        client.close()
        server.close()


def test_async_mode_reports_overdue_requests(port):
    client = BrokerClient(f"tcp://127.0.0.1:{port}", timeout=1.0)
    client.send(P.GetModel())
    assert not client.overdue()  # a second of margin against a stalled machine
    assert client.poll(1.2) == []
    assert client.overdue()
    client.connect()
    assert not client.overdue()
    client.close()


def test_backoff_doubles_to_the_cap_with_bounded_jitter():
    b = Backoff(1.0, 8.0, jitter=0.2)
    delays = [b.delay() for _ in range(6)]
    for got, base in zip(delays, [1, 2, 4, 8, 8, 8]):
        assert base * 0.8 <= got <= base * 1.2
    b.reset()
    assert b.delay() <= 1.2
