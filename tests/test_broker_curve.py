"""CURVE on the broker's sockets, with real processes: only allow-listed keys get in, revocation needs no restart.

The broker runs with ``security.curve: true`` on loopback (the same code path as a broker that
binds beyond loopback, where ``auto`` turns it on) and keys made by ``azgo_tools.keys``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import zmq.auth
from broker_helpers import batch, play_games, publish
from procs import Service, get_json, get_text, http_url, pub_endpoint, router_endpoint, tiny_config, wait_for

from azgo_core import protocol as P
from azgo_core.config import load_settings
from azgo_runtime.client import BrokerClient, BrokerUnavailable, RemoteError, Subscriber
from azgo_runtime.curve import client_curve
from azgo_runtime.service import settings_or_exit
from azgo_tools.keys import create_keys

REFUSED_WITHIN = 1.5  # seconds a refused client waits for an answer that never comes


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A broker with CURVE on, its keys, generation 0 published; yields (config, settings, keys dir, broker)."""
    tmp = tmp_path_factory.mktemp("curve")
    keys = tmp / "keys"
    create_keys(keys, ["learner", "selfplay", "evaluator"])
    config = tiny_config(tmp, security={"curve": True, "keys_dir": str(keys), "reload_interval": 0.2},
                         distributed={"heartbeat_interval": 0.5})
    settings = load_settings(config)
    broker = Service("broker", config, log_dir=tmp)
    try:
        wait_for(lambda: get_text(http_url(config, "/healthz")) == "ok\n", 60, "the broker's /healthz")
        with BrokerClient(router_endpoint(config), timeout=10, curve=client_curve(settings, "learner")) as learner:
            msg, blobs = publish(settings, 0)
            learner.request(msg, blobs)
        yield config, settings, keys, broker
    finally:
        broker.stop()
        print(broker.log()[-4000:])


def intruder_curve(tmp: Path, settings) -> dict:
    """A well-formed key pair that is not in the allow-list, with the broker's real public key."""
    public_file, secret_file = zmq.auth.create_certificates(tmp, "intruder")
    public, secret = zmq.auth.load_certificate(secret_file)
    server, _ = zmq.auth.load_certificate(Path(settings.security.keys_dir) / "broker.key")
    return {"publickey": public, "secretkey": secret, "serverkey": server}


def hello(worker_id: str, settings) -> P.Hello:
    return P.Hello(worker_id=worker_id, role="selfplay", board_size=settings.board.size)


def totals(config) -> dict:
    return get_json(http_url(config, "/status"))["totals"]


def refused_connections(config) -> float:
    text = get_text(http_url(config, "/metrics"))
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("azgo_connections_refused_total"))


def test_allowed_keys_submit_fetch_and_hear_announcements(secured):
    config, settings, keys, _ = secured
    curve = client_curve(settings, "selfplay")
    sub = Subscriber(pub_endpoint(config), curve=curve)
    with BrokerClient(router_endpoint(config), timeout=10, curve=curve) as client:
        welcome = client.request(hello("sp-allowed", settings)).message
        assert isinstance(welcome, P.Welcome) and welcome.model.generation == 0
        reply = client.request(P.GetModel(generation=0))
        assert reply.blobs and len(reply.blobs[0]) == reply.message.model.size
        before = totals(config)["batches"]
        msg, blobs = batch("curve-ok-1", "sp-allowed", play_games(settings, 2, "sp-allowed"))
        ack = client.request(msg, blobs).message
        assert isinstance(ack, P.BatchAck) and not ack.duplicate
        assert totals(config)["batches"] == before + 1
    # the subscriber's handshake passed the allow-list: it hears the next generation
    with BrokerClient(router_endpoint(config), timeout=10, curve=client_curve(settings, "learner")) as learner:
        msg, blobs = publish(settings, 1)
        learner.request(msg, blobs)
    heard = wait_for(lambda: sub.latest(0.2), 10, "the announcement of generation 1 over CURVE")
    assert heard.generation == 1
    sub.close()


def test_unknown_key_and_plain_clients_get_nothing(secured, tmp_path):
    config, settings, _, broker = secured
    before, refused_before = totals(config), refused_connections(config)
    intruder = intruder_curve(tmp_path, settings)
    records = play_games(settings, 2, "intruder")
    for name, curve in (("unknown key", intruder), ("no CURVE", None)):
        with BrokerClient(router_endpoint(config), timeout=REFUSED_WITHIN, curve=curve) as client:
            for message, blobs in ((hello("intruder", settings), []), (P.GetModel(generation=0), []),
                                   batch(f"intruder-{name[:2]}", "intruder", records)):
                client.send(message, blobs)
            assert client.poll(REFUSED_WITHIN) == [], name  # no model, no ack: nothing at all comes back
    # the unknown key's subscriber hears nothing, while an allowed one hears the same announcement
    spy = Subscriber(pub_endpoint(config), curve=intruder)
    ally = Subscriber(pub_endpoint(config), curve=client_curve(settings, "selfplay"))
    with BrokerClient(router_endpoint(config), timeout=10, curve=client_curve(settings, "learner")) as learner:
        generation = learner.request(P.GetModel()).message.model.generation + 1
        wait_for(lambda: refused_connections(config) > refused_before, 10, "the spy's handshake refused")
        msg, blobs = publish(settings, generation)
        learner.request(msg, blobs)
    wait_for(lambda: ally.latest(0.2), 10, "the allowed subscriber's announcement")
    assert spy.latest(0.5) is None
    spy.close()
    ally.close()
    after = totals(config)
    assert after["batches"] == before["batches"] and after["games"] == before["games"]
    assert refused_connections(config) >= refused_before + 2  # unknown key: router and pub at least
    assert "not in the allow-list" in broker.log()
    assert broker.alive()


def test_revoked_key_is_refused_without_a_restart(secured):
    config, settings, keys, broker = secured
    pid = broker.pid
    curve = client_curve(settings, "evaluator")
    authorized = keys / "authorized" / "evaluator.key"
    kept = authorized.with_name("evaluator.key.revoked")
    with BrokerClient(router_endpoint(config), timeout=10, curve=curve) as client:
        assert isinstance(client.request(hello("ev-revoked", settings)).message, P.Welcome)
        shutil.move(authorized, kept)  # revoke: the file leaves the allow-list folder
        try:
            # the connection made before the revocation: its next requests are refused by name
            def refused():
                try:
                    client.request(P.Heartbeat(worker_id="ev-revoked", generation=0))
                except RemoteError as e:
                    return e
                return None
            error = wait_for(refused, 10, "the revoked key's requests refused")
            assert error.code == P.ErrorCode.UNAUTHORIZED and "evaluator" in error.message
            # a new connection with the revoked key does not get through the handshake
            with BrokerClient(router_endpoint(config), timeout=REFUSED_WITHIN, curve=curve) as fresh:
                with pytest.raises(BrokerUnavailable):
                    fresh.request(hello("ev-revoked", settings))
        finally:
            shutil.move(kept, authorized)  # re-admitted, again without a restart
    with BrokerClient(router_endpoint(config), timeout=10, curve=curve) as again:
        reply = wait_for(lambda: _try_hello(again, settings), 10, "the re-admitted key's hello")
        assert isinstance(reply, P.Welcome)
    assert broker.pid == pid and broker.alive()
    assert "revoked evaluator" in broker.log() and "added evaluator" in broker.log()
    assert get_json(http_url(config, "/status"))["totals"]["rejected"] >= 1


def _try_hello(client: BrokerClient, settings):
    try:
        return client.request(hello("ev-again", settings), timeout=REFUSED_WITHIN).message
    except BrokerUnavailable:
        return None


def test_a_worker_process_plays_over_curve(secured, tmp_path):
    config, settings, _, _ = secured
    before = totals(config)["games"]
    worker = Service("selfplay", config, "--worker-id", "sp-curve", log_dir=tmp_path,
                     env={"AZGO_DISTRIBUTED__BATCH_SIZE": "2", "AZGO_DISTRIBUTED__BATCH_MAX_WAIT": "1"})
    try:
        wait_for(lambda: totals(config)["games"] > before, 120, "games from a worker connected with its CURVE key")
    finally:
        assert worker.stop() == 0, worker.log()


def test_missing_keys_stop_programs_with_the_file_named(tmp_path, capsys):
    config = tiny_config(tmp_path, security={"curve": True, "keys_dir": str(tmp_path / "no-keys")})
    broker = Service("broker", config, log_dir=tmp_path, tag="nokeys-broker")
    for role in ("selfplay", "learner", "evaluator"):  # the clients' mains make the same check first
        with pytest.raises(SystemExit) as stopped:
            settings_or_exit(str(config), logging.getLogger("test"), role=role)
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert f"no-keys/workers/{role}.key_secret" in err and "make keys" in err, err
    assert broker.wait(60) == 2, broker.log()
    assert "missing key file" in broker.log() and "broker.key_secret" in broker.log()


def test_allow_list_reload_ignores_writers_temporaries_and_survives_vanishing_files(tmp_path):
    from azgo_broker.auth import Authenticator

    keys = tmp_path / "keys"
    create_keys(keys, ["selfplay", "learner"])
    authorized = keys / "authorized"
    context = zmq.Context()
    auth = Authenticator(context, authorized, reload_interval=0.01)
    try:
        assert sorted(auth.keys.values()) == ["learner", "selfplay"]
        (authorized / ".half-written.key").write_text("public-key = \"tru")  # a writer's temporary: not read
        (authorized / "notes.txt").write_text("not a key")
        assert not auth.reload(force=True) and sorted(auth.keys.values()) == ["learner", "selfplay"]
        (authorized / "learner.key").unlink()
        assert auth.reload(force=True) and sorted(auth.keys.values()) == ["selfplay"]
        shutil.rmtree(authorized)  # no folder at all: nobody is admitted, and it is said
        assert auth.reload(force=True) and auth.keys == {}
    finally:
        auth.close()
        context.term()
