"""BrokerSession against a real ROUTER socket: the blocking mode beside the pumped one, hello again
when the broker has forgotten us, retries that end only when told, and no wait for a caller
that will try again later."""

from __future__ import annotations

import hashlib

import pytest
from procs import free_ports
from zmq_router import Router

from azgo_core import protocol as P
from azgo_core.config import load_settings
from azgo_runtime.client import BrokerUnavailable, RemoteError
from azgo_runtime.session import BrokerSession

SHA = hashlib.sha256(b"model").hexdigest()


def model(generation: int) -> P.ModelInfo:
    return P.ModelInfo(generation=generation, sha256=SHA, size=5)


def answer(request: P.Message, reply: P.Message, *blobs: bytes) -> list[bytes]:
    return [P.encode(reply.model_copy(update={"rid": request.rid})), *blobs]


@pytest.fixture
def ports():
    return free_ports(2)


def session_on(ports, should_stop=lambda: False, **distributed) -> BrokerSession:
    timing = {"heartbeat_interval": 0.05, "liveness": 40, "request_timeout": 5.0, "reconnect_min": 0.01,
              "reconnect_max": 0.02, **distributed}
    settings = load_settings(None, broker={"router_port": ports[0], "pub_port": ports[1], "http_port": 0},
                             distributed=timing, board={"size": 5})
    return BrokerSession(settings, P.Hello(worker_id="t1", board_size=5), keys="learner", should_stop=should_stop)


class Broker:
    """Knows a client once it said hello; answers heartbeats with generation 4 and fetches with generation 2."""

    def __init__(self):
        self.known = False

    def __call__(self, m: P.Message, blobs) -> list[list[bytes]]:
        if isinstance(m, P.Hello):
            self.known = True
            return [answer(m, P.Welcome(broker_id="b", model=None, heartbeat_interval=0.05, liveness=40))]
        if not self.known:
            return [answer(m, P.Error(code=P.ErrorCode.UNKNOWN_WORKER, message="has not said hello"))]
        if isinstance(m, P.Heartbeat):
            return [answer(m, P.HeartbeatAck(model=model(4)))]
        if isinstance(m, P.GetModel):
            return [answer(m, P.ModelData(model=model(2)), b"model")]
        return [answer(m, P.Error(code=P.ErrorCode.NO_MODEL, message="refused"))]


def test_a_call_gets_its_own_reply_and_the_pumped_ones_are_handled_meanwhile(ports):
    server = Router(ports[0], Broker())
    server.start()
    session = session_on(ports)
    try:
        session.start()  # the hello goes out pumped...
        reply = session.call(P.GetModel())  # ...and its Welcome arrives while the call waits
        assert isinstance(reply.message, P.ModelData) and reply.blobs == [b"model"]
        assert session.welcomed and not session.requests
        session.pump()  # due at once after a Welcome: a heartbeat, answered before the next call's reply
        assert session.waiting_for("heartbeat")
        session.call(P.GetModel())
        assert session.newest.generation == 4 and not session.waiting_for("heartbeat")
        with pytest.raises(RemoteError, match="refused"):
            session.call(P.GetSamples(after=0, window=10, max_bytes=1 << 20))
    finally:
        session.close()
        server.close()


def test_a_forgotten_client_says_hello_and_asks_again(ports):
    server = Router(ports[0], Broker())
    server.start()
    session = session_on(ports)
    try:
        reply = session.call(P.GetModel())  # no hello yet: the broker does not know us
        assert isinstance(reply.message, P.ModelData)
        assert [type(m) for m in server.seen] == [P.GetModel, P.Hello, P.GetModel]
        assert session.welcomed
    finally:
        session.close()
        server.close()


def test_a_call_retries_a_silent_broker_until_told_to_stop(ports):
    checks = []

    def should_stop():
        checks.append(1)
        return len(checks) >= 3

    session = session_on(ports, should_stop, request_timeout=0.1)  # nobody listens
    try:
        with pytest.raises(BrokerUnavailable, match="no reply"):
            session.call(P.GetModel())
        assert len(checks) >= 3 and session.reconnects >= 1 and not session.welcomed
        # lost: a caller that will try again later is told at once, not kept for the back-off
        with pytest.raises(BrokerUnavailable, match="is silent; reconnecting in"):
            session.call(P.GetModel(), retry=False)
    finally:
        session.close()
