"""The worker's BrokerLink against a scripted broker: real ZeroMQ ROUTER and PUB sockets in the
test, answering each request as the test says, so every reply path is exercised exactly:
acks, refusals, storage trouble, a broker that forgot the worker, silence, announcements."""

from __future__ import annotations

import hashlib
import time

import pytest
import zmq

from azgo_core import protocol as P
from azgo_core.config import load_settings
from azgo_selfplay.link import MAX_IN_FLIGHT, BrokerLink
from azgo_selfplay.outbox import Batch, Outbox

SHA = hashlib.sha256(b"model").hexdigest()


def model(generation: int) -> P.ModelInfo:
    return P.ModelInfo(generation=generation, sha256=SHA, size=5)


class ScriptedBroker:
    """The broker's two sockets; ``expect`` pumps the link until a request arrives."""

    def __init__(self, link_factory):
        self.ctx = zmq.Context.instance()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.linger = 0
        self.pub = self.ctx.socket(zmq.XPUB)  # a PUB that shows us the subscriptions arriving
        self.pub.linger = 0
        router_port = self.router.bind_to_random_port("tcp://127.0.0.1")
        pub_port = self.pub.bind_to_random_port("tcp://127.0.0.1")
        self.link = link_factory(router_port, pub_port)

    def expect(self, kind: type[P.Message], timeout: float = 10.0):
        """The next request (skipping heartbeats unless asked for): (identity, message, blobs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.link.pump(0.0)
            if self.router.poll(10):
                identity, header, *blobs = self.router.recv_multipart()
                msg = P.decode(header, blobs=len(blobs))
                if isinstance(msg, kind):
                    return identity, msg, blobs
                if not isinstance(msg, P.Heartbeat):
                    raise AssertionError(f"expected {kind.__name__}, got {msg.type}")
                self.reply(identity, msg, P.HeartbeatAck(model=None))
        raise AssertionError(f"no {kind.__name__} within {timeout} s")

    def reply(self, identity: bytes, request: P.Message, answer: P.Message, blobs=()) -> None:
        self.router.send_multipart([identity, P.encode(answer.model_copy(update={"rid": request.rid})), *blobs])

    def welcome(self, current: P.ModelInfo | None = None) -> bytes:
        identity, hello, _ = self.expect(P.Hello)
        d = self.link_settings.distributed
        self.reply(identity, hello, P.Welcome(broker_id="test", model=current, heartbeat_interval=d.heartbeat_interval,
                                              liveness=d.liveness))
        self.pump_until(lambda: self.link.welcomed, "the welcome")
        return identity

    def pump_until(self, predicate, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.link.pump(0.01)

    def close(self) -> None:
        self.link.close()
        self.router.close()
        self.pub.close()


ROOMY = {"heartbeat_interval": 0.05, "liveness": 40, "request_timeout": 5.0, "reconnect_min": 0.05, "reconnect_max": 0.2}
"""Timing for tests not about silence: a loaded machine never makes the link give up on the scripted broker."""


@pytest.fixture
def make_broker(tmp_path):
    """``make_broker(**distributed)``: a scripted broker with a started link (ROOMY timing, overridden)."""
    made = []

    def make_broker(**distributed) -> ScriptedBroker:
        box = Outbox(tmp_path / "outbox")
        box_settings = {}

        def make(router_port, pub_port):
            settings = load_settings(None, broker={"router_port": router_port, "pub_port": pub_port, "http_port": 0},
                                     distributed={**ROOMY, **distributed}, board={"size": 5})
            box_settings["settings"] = settings
            hello = P.Hello(worker_id="w1", board_size=5)
            link = BrokerLink(settings, hello, box,
                              lambda: {"state": P.WorkerState.ACTIVE, "generation": 0, "games_total": 3})
            link.start()
            return link

        b = ScriptedBroker(make)
        b.outbox, b.link_settings = box, box_settings["settings"]
        made.append(b)
        return b

    yield make_broker
    for b in made:
        b.close()


@pytest.fixture
def broker(make_broker):
    return make_broker()


def put(box: Outbox, n: int) -> str:
    box.put(Batch(P.BatchHeader(batch_id=f"w1-{n}", worker_id="w1", games=2, positions=9, generations=[0]), b"B%d" % n,
                  created=n))
    return f"w1-{n}"


def test_welcome_resends_the_outbox_and_acks_delete_files(broker):
    ids = [put(broker.outbox, n) for n in range(1, 3)]
    broker.welcome(model(2))
    assert broker.link.newest.generation == 2
    for batch_id in ids:  # oldest first, with the file's fields
        identity, submit, blobs = broker.expect(P.SubmitBatch)
        assert (submit.batch_id, submit.games, submit.positions, submit.generations, blobs) == \
            (batch_id, 2, 9, [0], [broker.outbox.get(batch_id).blob])
        broker.reply(identity, submit, P.BatchAck(batch_id=batch_id, duplicate=batch_id == ids[1], seq=0))
    broker.pump_until(lambda: len(broker.outbox) == 0, "both acks")
    assert (broker.link.acked, broker.link.duplicates) == (2, 1)


def test_heartbeats_carry_the_workers_figures_and_acks_announce_models(broker):
    put(broker.outbox, 1)
    broker.welcome()
    identity, beat, _ = broker.expect(P.Heartbeat)
    assert (beat.worker_id, beat.state, beat.generation, beat.games_total, beat.outbox) == ("w1", "Active", 0, 3, 1)
    broker.reply(identity, beat, P.HeartbeatAck(model=model(5)))
    broker.pump_until(lambda: broker.link.newest is not None, "the model from the heartbeat ack")
    assert broker.link.newest.generation == 5
    # PUB drops messages to subscribers still joining: wait until the subscription has arrived
    broker.pump_until(lambda: broker.pub.poll(0) and broker.pub.recv() == b"\x01" + P.ANNOUNCE_TOPIC, "the subscription")
    broker.pub.send_multipart([P.ANNOUNCE_TOPIC, P.encode(P.Announce(model=model(7)))])
    broker.pub.send_multipart([P.ANNOUNCE_TOPIC, P.encode(P.Announce(model=model(6)))])  # older: never adopted
    broker.pump_until(lambda: broker.link.newest.generation == 7, "the announcement")


def test_refused_batches_are_set_aside_and_storage_trouble_retried(broker):
    bad, wrong, later = put(broker.outbox, 1), put(broker.outbox, 2), put(broker.outbox, 3)
    broker.welcome()
    answers = {bad: P.ErrorCode.BAD_BATCH, wrong: P.ErrorCode.WRONG_GENERATION, later: P.ErrorCode.STORAGE}
    for _ in range(3):
        identity, submit, _ = broker.expect(P.SubmitBatch)
        broker.reply(identity, submit, P.Error(code=answers[submit.batch_id], message="no"))
    identity, submit, _ = broker.expect(P.SubmitBatch)  # only the STORAGE one comes back
    assert submit.batch_id == later
    broker.reply(identity, submit, P.BatchAck(batch_id=later, duplicate=False, seq=1))
    broker.pump_until(lambda: len(broker.outbox) == 0, "the retried batch's ack")
    assert sorted(p.name for p in broker.outbox.rejected_dir.glob("*.batch")) == [f"{bad}.batch", f"{wrong}.batch"]
    assert broker.link.rejected == 2


def test_unknown_worker_says_hello_again_then_resends(broker):
    broker.welcome()
    batch_id = put(broker.outbox, 1)
    broker.link.enqueue(batch_id)
    identity, submit, _ = broker.expect(P.SubmitBatch)
    broker.reply(identity, submit, P.Error(code=P.ErrorCode.UNKNOWN_WORKER, message="restarted"))
    broker.welcome()  # a second hello on the same connection
    identity, submit, _ = broker.expect(P.SubmitBatch)
    assert submit.batch_id == batch_id
    broker.reply(identity, submit, P.BatchAck(batch_id=batch_id, duplicate=False, seq=0))
    broker.pump_until(lambda: len(broker.outbox) == 0, "the ack after the second hello")


def test_silence_means_reconnect_and_hello_on_a_new_connection(make_broker):
    broker = make_broker(request_timeout=1.0)
    first = broker.welcome()
    silent_since = time.monotonic()
    unanswered = []  # the broker answers nothing from now on, until a hello comes

    def hello_arrived() -> bool:
        if not broker.router.poll(0):
            return False
        identity, header, *_ = broker.router.recv_multipart()
        unanswered.append((identity, P.decode(header)))
        return unanswered[-1][1].type == "hello"

    broker.pump_until(hello_arrived, "a hello after the silence")
    identity, hello = unanswered.pop()
    assert time.monotonic() - silent_since > 1.0  # request_timeout, not the liveness window
    assert identity != first and broker.link.reconnects == 1  # a fresh DEALER socket
    assert unanswered and all(m.type == "heartbeat" and i == first for i, m in unanswered)
    broker.reply(identity, hello, P.Welcome(broker_id="test", model=None, heartbeat_interval=0.05, liveness=40))
    broker.pump_until(lambda: broker.link.welcomed, "the welcome on the new connection")


def test_a_stalled_broker_is_waited_for_past_the_liveness_window(make_broker):
    broker = make_broker(heartbeat_interval=0.05, liveness=2, request_timeout=5.0)  # liveness window 0.1 s
    broker.welcome()
    stall = time.monotonic() + 1.0  # a slow round: ten liveness windows without a reply
    beats = []
    while time.monotonic() < stall:
        broker.link.pump(0.01)
        if broker.router.poll(0):
            identity, header, *_ = broker.router.recv_multipart()
            beats.append((identity, P.decode(header)))
    assert len(beats) >= 3 and all(b.type == "heartbeat" for _, b in beats)  # heartbeats kept their cadence
    assert len({identity for identity, _ in beats}) == 1  # on one connection: no reconnect, no new hello
    for identity, beat in beats:  # the round ends: every reply arrives, late
        broker.reply(identity, beat, P.HeartbeatAck(model=model(3)))
    # every stalled beat's reply is matched (a heartbeat sent meanwhile may still be pending)
    stalled = {beat.rid for _, beat in beats}
    broker.pump_until(lambda: broker.link.newest is not None and not stalled & broker.link.requests.keys(),
                      "the late heartbeat acks")
    assert broker.link.welcomed and broker.link.reconnects == 0


def test_a_lost_batch_is_sent_again_while_the_broker_answers_others(make_broker):
    broker = make_broker(request_timeout=2.0)
    first = broker.welcome()
    batch_id = put(broker.outbox, 1)
    broker.link.enqueue(batch_id)
    identity, lost, _ = broker.expect(P.SubmitBatch)  # its reply never comes; heartbeats are answered
    sent = time.monotonic()
    identity, again, _ = broker.expect(P.SubmitBatch, timeout=20.0)
    assert time.monotonic() - sent > 1.5  # only after request_timeout
    assert (again.batch_id, identity, broker.link.reconnects) == (batch_id, first, 0) and again.rid != lost.rid
    broker.reply(identity, again, P.BatchAck(batch_id=batch_id, duplicate=False, seq=0))
    broker.pump_until(lambda: len(broker.outbox) == 0, "the resent batch's ack")
    assert broker.link.welcomed


def test_at_most_a_few_batches_in_flight(broker):
    for n in range(MAX_IN_FLIGHT + 2):
        put(broker.outbox, n)
    broker.welcome()
    got = [broker.expect(P.SubmitBatch) for _ in range(MAX_IN_FLIGHT)]
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        broker.link.pump(0.01)
        if broker.router.poll(0):
            identity, header, *_ = broker.router.recv_multipart()
            beat = P.decode(header)
            assert beat.type == "heartbeat"  # no fifth batch before an ack
            broker.reply(identity, beat, P.HeartbeatAck(model=None))
    identity, submit, _ = got[0]
    broker.reply(identity, submit, P.BatchAck(batch_id=submit.batch_id, duplicate=False, seq=0))
    assert broker.expect(P.SubmitBatch)[1].batch_id == f"w1-{MAX_IN_FLIGHT}"
