"""The broker as a real process on loopback: every request type, bad input, HTTP, liveness, restarts."""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import msgpack
import pytest
import zmq
from broker_helpers import batch, game, play_games, publish, tiny_settings
from procs import Service, get_json, get_text, http_url, metric_samples, pub_endpoint, router_endpoint, tiny_config, wait_for

from azgo_core import protocol as P
from azgo_core.config import Settings
from azgo_runtime.client import BrokerClient, RemoteError, Subscriber

TIMEOUT = 10.0


@dataclass
class Running:
    config: Path
    settings: Settings
    service: Service
    generations: itertools.count  # the next unused generation

    def client(self) -> BrokerClient:
        return BrokerClient(router_endpoint(self.config), timeout=TIMEOUT)

    def url(self, route: str) -> str:
        return http_url(self.config, route)

    def publish_next(self, client: BrokerClient) -> P.ModelInfo:
        msg, blobs = publish(self.settings, next(self.generations))
        return client.request(msg, blobs).message.model


def start(config: Path, tmp_path: Path, tag: str = "broker") -> Service:
    service = Service("broker", config, log_dir=tmp_path, tag=tag)
    try:
        wait_for(lambda: get_text(http_url(config, "/healthz")) == "ok\n", 60, "the broker's /healthz")
    except AssertionError:
        service.stop()
        print(service.log())
        raise
    return service


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """One broker for the tests that need no restart, with generation 0 published."""
    tmp = tmp_path_factory.mktemp("broker")
    config = tiny_config(tmp)
    service = start(config, tmp)
    running = Running(config, tiny_settings(config), service, itertools.count(0))
    client = running.client()
    running.publish_next(client)
    client.close()
    yield running
    rc = service.stop()
    print(service.log())  # shown when a test failed
    assert rc == 0


def metrics(running: Running) -> dict[str, float]:
    return metric_samples(running.url("/metrics"))


def raw_request(endpoint: str, frames: list[bytes]) -> tuple[P.Message, list[bytes]]:
    """Send raw frames on a fresh DEALER; the decoded reply header and its blobs."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    try:
        sock.send_multipart(frames)
        assert sock.poll(int(TIMEOUT * 1000)), "no reply from the broker"
        reply = sock.recv_multipart()
        return P.decode(reply[0]), reply[1:]
    finally:
        sock.close()


def header(**fields) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


# --- requests ----------------------------------------------------------------------------


def test_hello_heartbeat_and_unknown_worker(broker):
    client = broker.client()
    welcome = client.request(P.Hello(worker_id="hb-1", board_size=5, host="h", gpu="none", pid=42)).message
    assert isinstance(welcome, P.Welcome) and welcome.model.generation >= 0
    assert (welcome.heartbeat_interval, welcome.liveness) == (0.2, 5)
    ack = client.request(P.Heartbeat(worker_id="hb-1", generation=0, games_per_s=3.5)).message
    assert isinstance(ack, P.HeartbeatAck) and ack.model.generation >= welcome.model.generation
    with pytest.raises(RemoteError, match="'never-said-hello' has not said hello") as e:
        client.request(P.Heartbeat(worker_id="never-said-hello"))
    assert e.value.code == P.ErrorCode.UNKNOWN_WORKER
    with pytest.raises(RemoteError, match="board size 9, this broker runs 5x5") as e:
        client.request(P.Hello(worker_id="hb-9", board_size=9))
    assert e.value.code == P.ErrorCode.BAD_MESSAGE
    client.close()


def test_get_model_current_and_unknown(broker):
    client = broker.client()
    reply = client.request(P.GetModel())
    model = reply.message.model
    assert isinstance(reply.message, P.ModelData) and hashlib.sha256(reply.blobs[0]).hexdigest() == model.sha256
    assert client.request(P.GetModel(generation=0)).message.model.generation == 0
    with pytest.raises(RemoteError, match="generation 999 was never published") as e:
        client.request(P.GetModel(generation=999))
    assert e.value.code == P.ErrorCode.NO_MODEL
    client.close()


def test_publish_is_announced_and_stale_or_bad_models_refused(broker):
    client = broker.client()
    sub = Subscriber(pub_endpoint(broker.config))
    seen: list[P.ModelInfo] = []

    def publish_and_listen():  # a SUB may join after the first announcement: publish until one arrives
        published = broker.publish_next(client)
        got = sub.latest(0.5)
        seen.append(published)
        return got if got is not None and got.generation == published.generation else None

    info = wait_for(publish_and_listen, 20, "an announcement on the PUB socket")
    assert info == seen[-1] and info.sha256 == seen[-1].sha256
    stale, blobs = publish(broker.settings, 0)
    with pytest.raises(RemoteError, match="not above the current generation") as e:
        client.request(stale, blobs)
    assert e.value.code == P.ErrorCode.STALE_GENERATION
    msg, blobs = publish(broker.settings, info.generation + 1)
    with pytest.raises(RemoteError, match="CorruptModelError") as e:
        client.request(msg, [blobs[0][:-1] + b"\x00"])
    assert e.value.code == P.ErrorCode.BAD_MODEL
    retry = client.request(P.PublishModel(generation=info.generation, sha256=info.sha256),
                           [client.request(P.GetModel()).blobs[0]]).message
    assert isinstance(retry, P.ModelAck) and retry.model == info  # idempotent
    sub.close()
    client.close()


BAD_FRAMES = [
    ([b"\xc1 not msgpack"], P.ErrorCode.BAD_MESSAGE, "not valid msgpack"),
    ([header(v=2, type="hello", rid=7)], P.ErrorCode.BAD_VERSION, "protocol version 2"),
    ([header(v=1, type="frobnicate", rid=8)], P.ErrorCode.UNKNOWN_TYPE, "unknown message type 'frobnicate'"),
    ([header(v=1, type="ok", rid=9)], P.ErrorCode.UNKNOWN_TYPE, "'ok' is a reply, not a request"),
    ([header(v=1, type="submit_batch", rid=10, batch_id="x", worker_id="w", games=1, positions=0, generations=[0])],
     P.ErrorCode.BAD_MESSAGE, "expected 1 blob frame(s), got 0"),
    ([header(v=1, type="get_model", rid=11), b"extra"], P.ErrorCode.BAD_MESSAGE, "expected 0 blob frame(s), got 1"),
    ([header(v=1, type="hello", rid=12, worker_id="bad id!", board_size=5)], P.ErrorCode.BAD_MESSAGE, "worker_id"),
    ([header(v=1, type=["hello"], rid=13)], P.ErrorCode.UNKNOWN_TYPE, "unknown message type ['hello']"),  # unhashable
    ([header(v=1, type={"a": 1}, rid=14)], P.ErrorCode.UNKNOWN_TYPE, "unknown message type"),
    ([header(v=1, type="get_samples", rid=15, window=10, max_bytes=1 << 40)], P.ErrorCode.BAD_MESSAGE, "max_bytes"),
    ([b""], P.ErrorCode.BAD_MESSAGE, "not valid msgpack"),
]


@pytest.mark.parametrize("frames,code,words", BAD_FRAMES, ids=[c.value + str(i) for i, (_, c, _) in enumerate(BAD_FRAMES)])
def test_malformed_requests_get_a_named_error_and_everyone_keeps_working(broker, frames, code, words):
    client = broker.client()  # another peer, connected before the bad request
    client.request(P.Hello(worker_id="bystander", board_size=5))
    reply, _ = raw_request(router_endpoint(broker.config), frames)
    assert isinstance(reply, P.Error) and reply.code == code and words in reply.message
    rid = msgpack.unpackb(frames[0]).get("rid", 0) if frames[0][:1] not in (b"\xc1", b"") else 0
    assert reply.rid == rid  # the error reaches the right waiter
    assert isinstance(client.request(P.Heartbeat(worker_id="bystander")).message, P.HeartbeatAck)
    assert isinstance(raw_request(router_endpoint(broker.config), [P.encode(P.GetModel(rid=5))])[0], P.ModelData)
    client.close()


def test_bad_batches_are_refused_by_reason_and_counted(broker):
    client = broker.client()
    client.request(P.Hello(worker_id="badb", board_size=5))
    before = metrics(broker)
    cases = [
        (batch("ill", "badb", [game([0, 1, 0], worker_id="badb")]), P.ErrorCode.BAD_BATCH,
         "batch ill: game 0, move 3: illegal move A5: occupied"),
        (batch("size", "badb", [game([0], size=7, worker_id="badb")]), P.ErrorCode.BAD_BATCH,
         "game 0: board size 7, this run plays 5x5"),
        (batch("gen", "badb", [game([0], worker_id="badb", generation=4321)]), P.ErrorCode.WRONG_GENERATION,
         "generation 4321, which was never published"),
        ((P.SubmitBatch(batch_id="junk", worker_id="badb", games=1, positions=1, generations=[0]), [b"\x00junk"]),
         P.ErrorCode.BAD_BATCH, "undecodable batch"),
    ]
    for (msg, blobs), code, words in cases:
        with pytest.raises(RemoteError) as e:
            client.request(msg, blobs)
        assert e.value.code == code and words in e.value.message
    after = metrics(broker)
    key = 'azgo_batches_rejected_total{{reason="{}"}}'
    assert after[key.format("bad_batch")] - before.get(key.format("bad_batch"), 0) == 3
    assert after[key.format("wrong_generation")] - before.get(key.format("wrong_generation"), 0) == 1
    # nothing was stored, and the same worker's good batch still goes through
    games = play_games(broker.settings, 2, "badb")
    ack = client.request(*batch("badb-good", "badb", games)).message
    assert isinstance(ack, P.BatchAck) and not ack.duplicate
    client.close()


def test_batches_are_stored_once_and_served_as_samples(broker):
    client = broker.client()
    client.request(P.Hello(worker_id="store-w", board_size=5))
    games = play_games(broker.settings, 3, "store-w")
    msg, blobs = batch("store-b1", "store-w", games)
    first = client.request(msg, blobs).message
    again = client.request(msg, blobs).message
    assert not first.duplicate and again.duplicate and again.seq == first.seq
    samples = client.request(P.GetSamples(after=first.seq - 1, window=10**9))
    assert samples.message.batches[0] == P.StoredBatch(seq=first.seq, games=3, positions=msg.positions)
    assert samples.blobs[0] == blobs[0]  # exactly as sent
    assert samples.message.last_seq >= first.seq and samples.message.total_games >= 3
    wait_for(lambda: get_json(broker.url("/status"))["totals"]["duplicates"] >= 1, 10, "the duplicate in /status")
    client.close()


# --- HTTP, status, metrics ----------------------------------------------------------------

METRIC_NAMES = [
    "azgo_games_received_total", "azgo_positions_received_total", "azgo_batches_received_total",
    "azgo_duplicate_batches_total", "azgo_messages_total", "azgo_workers", "azgo_model_generation",
    "azgo_model_sync_seconds_bucket", "azgo_model_sync_seconds_count", "azgo_bytes_received_total",
    "azgo_bytes_sent_total", "azgo_learner_steps", "azgo_learner_loss", "azgo_learner_samples_per_second",
    "azgo_learner_samples_trained", "azgo_selfplay_games_per_second", "azgo_selfplay_nn_evals_per_second",
    "azgo_selfplay_positions_per_second", "azgo_store_bytes", "azgo_store_games", "azgo_store_positions",
    "azgo_selfplay_health", "azgo_selfplay_health_warnings",
]


def test_metrics_parse_and_carry_the_figures(broker):
    client = broker.client()
    client.request(P.Hello(worker_id="met-w", board_size=5))
    info = broker.publish_next(client)  # published while met-w is connected: its sync time is measured
    client.request(P.Heartbeat(worker_id="met-w", generation=info.generation, games_per_s=2.5, nn_evals_per_s=640.0))
    health = P.SelfPlayHealth(games=400, black_win_share=0.95, resigned_share=0.5, mean_moves=31.0,
                              white_passes_first_share=None, first_pass_move=None, false_resignation_rate=0.25)
    client.request(P.LearnerReport(step=77, generation=info.generation, samples_trained=4096, positions_seen=900,
                                   samples_per_s=512.0, loss_policy=2.5, loss_value=0.75, loss_total=3.25,
                                   health=health, health_warnings=["black won 95% of the last 400 self-play games"]))
    client.request(*batch("met-b", "met-w", play_games(broker.settings, 1, "met-w")))
    rejected = batch("met-bad", "met-w", [game([0, 0], worker_id="met-w")])
    with pytest.raises(RemoteError):
        client.request(*rejected)

    m = wait_for(lambda: (m := metrics(broker))["azgo_store_games"] > 0 and m, 10, "the store gauges")
    names = {k.split("{")[0] for k in m}
    assert not [n for n in METRIC_NAMES if n not in names]
    assert m['azgo_batches_rejected_total{reason="bad_batch"}'] >= 1
    assert m["azgo_model_generation"] == info.generation
    assert m["azgo_model_sync_seconds_count"] >= 1
    assert m['azgo_selfplay_games_per_second{worker="met-w"}'] == 2.5
    assert m['azgo_selfplay_nn_evals_per_second{worker="met-w"}'] == 640.0
    assert m["azgo_learner_steps"] == 77 and m['azgo_learner_loss{kind="value"}'] == 0.75
    assert m['azgo_selfplay_health{figure="black_win_share"}'] == 0.95 and m['azgo_selfplay_health{figure="games"}'] == 400
    assert m['azgo_selfplay_health{figure="mean_moves"}'] == 31.0 and m["azgo_selfplay_health_warnings"] == 1
    assert math.isnan(m['azgo_selfplay_health{figure="first_pass_move"}'])  # no pass seen: unknown, not 0
    status = wait_for(lambda: (s := get_json(broker.url("/status")))["learner"]["health"] and s, 10, "health in /status")
    assert status["learner"]["health"]["false_resignation_rate"] == 0.25
    assert status["learner"]["health_warnings"] == ["black won 95% of the last 400 self-play games"]
    assert m['azgo_messages_total{type="learner_report"}'] >= 1
    assert all(f'azgo_workers{{state="{s}"}}' in m for s in ("Active", "Syncing", "Error", "Offline"))
    assert m["azgo_bytes_received_total"] > 0 and m["azgo_bytes_sent_total"] > 0
    client.close()


def test_status_json_status_txt_healthz_and_404(broker):
    client = broker.client()
    client.request(P.Hello(worker_id="st-w", board_size=5, host="st-host", gpu="T4"))
    client.request(P.Heartbeat(worker_id="st-w", generation=0, games_total=17, games_per_s=1.25, outbox=2))
    client.request(P.LearnerReport(step=3, generation=0, samples_trained=96, positions_seen=40, samples_per_s=9.0,
                                   loss_policy=float("nan"), loss_value=0.5, loss_total=float("nan")))

    def row():
        status = get_json(broker.url("/status"))
        return status if any(w["worker_id"] == "st-w" and w["games_total"] == 17 for w in status["workers"]) else None

    status = wait_for(row, 10, "st-w in /status")
    assert set(status) == {"broker", "model", "workers", "workers_by_state", "totals", "rates", "learner", "ratings"}
    assert status["ratings"] is None  # no evaluator has reported
    assert set(status["broker"]) == {"id", "version", "uptime_s", "data_dir"}
    assert set(status["workers_by_state"]) == {"Active", "Syncing", "Error", "Offline"}
    assert set(status["totals"]) == {"games", "positions", "batches", "duplicates", "rejected", "bytes_in",
                                     "bytes_out", "store_bytes"}
    assert set(status["rates"]) == {"games_per_s", "positions_per_s"}
    w = next(w for w in status["workers"] if w["worker_id"] == "st-w")
    assert (w["host"], w["gpu"], w["state"], w["outbox"], w["games_per_s"]) == ("st-host", "T4", "Active", 2, 1.25)
    assert 0 <= w["last_seen_s"] < 10
    assert all(w["role"] == "selfplay" for w in status["workers"])
    assert status["learner"]["step"] == 3 and status["learner"]["loss_policy"] is None and status["learner"]["age_s"] >= 0
    assert status["model"]["generation"] >= 0

    path = Path(status["broker"]["data_dir"]) / "status.txt"
    text = wait_for(lambda: "st-w" in (t := path.read_text()) and t, 10, "st-w in status.txt")
    assert re.search(r"^st-w\s+st-host\s+Active\s+\d{6}\s+17\s+1\.25", text, re.M)
    assert get_text(broker.url("/healthz")) == "ok\n"
    with pytest.raises(urllib.error.HTTPError) as e:
        get_text(broker.url("/nope"))
    assert e.value.code == 404
    client.close()


def test_silent_worker_goes_offline_then_back_with_hello(broker):
    client = broker.client()
    client.request(P.Hello(worker_id="quiet", board_size=5))
    client.request(P.Heartbeat(worker_id="quiet"))
    liveness = broker.settings.distributed.liveness_seconds  # 1 s in the tiny config

    def state():
        return next((w["state"] for w in get_json(broker.url("/status"))["workers"] if w["worker_id"] == "quiet"), None)

    silent_since = time.monotonic()
    wait_for(lambda: state() == "Offline", liveness + 5, "the silent worker to go Offline")
    assert time.monotonic() - silent_since > liveness
    client.request(P.Hello(worker_id="quiet", board_size=5))
    wait_for(lambda: state() == "Syncing", 5, "the worker to be back (Syncing) after a new hello")
    client.request(P.Heartbeat(worker_id="quiet"))
    wait_for(lambda: state() == "Active", 5, "the worker to be Active after its heartbeat")
    client.close()


# --- restarts -------------------------------------------------------------------------------


def test_only_the_connection_that_said_hello_submits_as_that_worker(broker):
    honest, other = broker.client(), broker.client()
    honest.request(P.Hello(worker_id="id-w", board_size=5))
    games = play_games(broker.settings, 2, "id-w")

    def stored(batch_id: str) -> bool:
        return honest.request(*batch(batch_id, "id-w", games)).message.duplicate  # a resend tells

    assert not stored("id-b1") and stored("id-b1")
    # another connection posing as id-w, and an id that never said hello: refused, nothing stored
    with pytest.raises(RemoteError, match="unknown_worker: worker 'id-w' said hello on another connection"):
        other.request(*batch("id-b2", "id-w", games))
    with pytest.raises(RemoteError, match="unknown_worker: worker 'ghost' has not said hello"):
        other.request(*batch("id-b3", "ghost", play_games(broker.settings, 1, "ghost")))
    assert not stored("id-b2")  # first stored now, by its owner
    # a hello moves the id to the connection that said it
    other.request(P.Hello(worker_id="id-w", board_size=5))
    assert isinstance(other.request(*batch("id-b5", "id-w", games)).message, P.BatchAck)
    with pytest.raises(RemoteError, match="said hello on another connection"):
        honest.request(*batch("id-b6", "id-w", games))
    honest.close()
    other.close()


def test_duplicates_stay_duplicates_across_a_restart_and_sigterm_exits_0(tmp_path):
    config = tiny_config(tmp_path)
    settings = tiny_settings(config)
    service = start(config, tmp_path)
    client = BrokerClient(router_endpoint(config), timeout=TIMEOUT)
    try:
        client.request(*publish(settings, 0))
        client.request(P.Hello(worker_id="rs-w", board_size=settings.board.size))
        games = play_games(settings, 4, "rs-w")
        msg, blobs = batch("rs-b1", "rs-w", games)
        assert client.request(msg, blobs).message.duplicate is False
        assert client.request(msg, blobs).message.duplicate is True
        totals = get_json(http_url(config, "/status"))["totals"]
        assert (totals["batches"], totals["games"], totals["positions"]) == (1, 4, msg.positions)
    finally:
        assert service.stop() == 0, service.log()
    assert "stopping (signal 15)" in service.log()

    service = start(config, tmp_path, tag="broker-2")
    try:
        with pytest.raises(RemoteError, match="unknown_worker"):  # a worker's outbox resends after the restart
            client.request(msg, blobs)  # to a broker that has forgotten it...
        client.request(P.Hello(worker_id="rs-w", board_size=settings.board.size))  # ...so it says hello again
        ack = client.request(msg, blobs).message
        assert ack.duplicate is True and ack.seq == 0
        totals = get_json(http_url(config, "/status"))["totals"]
        assert (totals["batches"], totals["games"]) == (1, 4)
        samples = client.request(P.GetSamples(window=1000))
        assert samples.blobs == blobs and samples.message.last_seq == 0
        assert client.request(P.GetModel()).message.model.generation == 0  # the registry survived too
    finally:
        client.close()
        assert service.stop() == 0, service.log()


def test_acked_batches_survive_sigkill(tmp_path):
    config = tiny_config(tmp_path)
    settings = tiny_settings(config)
    service = start(config, tmp_path)
    client = BrokerClient(router_endpoint(config), timeout=TIMEOUT)
    client.request(*publish(settings, 0))
    client.request(P.Hello(worker_id="kill-w", board_size=settings.board.size))
    games = play_games(settings, 2, "kill-w")
    sent = {}
    for i in range(40):  # in flight together: many land in one group commit
        msg, blobs = batch(f"k{i}", "kill-w", games)
        sent[client.send(msg, blobs)] = (msg, blobs)
    acked = set()

    def some_acked():
        acked.update(sent[r.rid][0].batch_id for r in client.poll(0.5) if isinstance(r.message, P.BatchAck))
        return len(acked) >= 10

    wait_for(some_acked, 30, "ten acks")
    service.kill()  # no chance to clean up, possibly mid-write
    service = start(config, tmp_path, tag="broker-2")
    try:
        client.connect()
        client.request(P.Hello(worker_id="kill-w", board_size=settings.board.size))  # the new broker knows no one
        for msg, blobs in sent.values():
            ack = client.request(msg, blobs).message
            assert ack.duplicate or msg.batch_id not in acked, f"acked batch {msg.batch_id} was lost"
        totals = get_json(http_url(config, "/status"))["totals"]
        assert totals["batches"] == 40 and totals["games"] == 80
    finally:
        client.close()
        assert service.stop() == 0, service.log()


def test_http_port_zero_picks_a_free_port(tmp_path):
    config = tiny_config(tmp_path, broker={"http_port": 0})
    service = Service("broker", config, log_dir=tmp_path)
    try:
        found = wait_for(lambda: re.search(r"/healthz on http://[\d.]+:(\d+)", service.log()), 60, "the HTTP port in the log")
        assert get_text(f"http://127.0.0.1:{found.group(1)}/healthz") == "ok\n"
    finally:
        assert service.stop() == 0, service.log()
