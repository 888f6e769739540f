"""The containers' health checks (azgo_runtime.health) and `make keys` (azgo_tools.keys), without Docker."""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import zmq.auth

from azgo_runtime import health
from azgo_runtime.service import StopFlag
from azgo_tools.keys import create_keys
from azgo_tools.keys import main as keys_main


# --- health ----------------------------------------------------------------------------------
def test_heartbeat_touches_at_most_once_per_interval(tmp_path):
    path = tmp_path / "alive"
    beat = health.Heartbeat(path, interval=3600)
    beat.beat()
    assert path.exists()
    os.utime(path, (1, 1))
    beat.beat()  # within the interval: not touched again
    assert path.stat().st_mtime == 1
    health.Heartbeat(path, interval=0).beat()
    assert time.time() - path.stat().st_mtime < 60


def test_check_file_fresh_stale_missing(tmp_path):
    path = tmp_path / "alive"
    ok, line = health.check_file(path, 60)
    assert not ok and "no heartbeat" in line
    path.touch()
    assert health.check_file(path, 60)[0]
    old = time.time() - 120
    os.utime(path, (old, old))
    ok, line = health.check_file(path, 60)
    assert not ok and "stale" in line and "120 s ago" in line


def test_health_main_exit_status(tmp_path, monkeypatch, capsys):
    path = tmp_path / "alive"
    monkeypatch.delenv(health.ENV_HEALTH_FILE, raising=False)
    assert health.main(["--file"]) == 1
    assert "no heartbeat file" in capsys.readouterr().out
    monkeypatch.setenv(health.ENV_HEALTH_FILE, str(path))
    assert health.main(["--file"]) == 1
    path.touch()
    assert health.main(["--file"]) == 0
    assert health.main(["--file", str(tmp_path / "other")]) == 1


def test_stop_flag_beats_only_with_the_env(tmp_path, monkeypatch):
    path = tmp_path / "alive"
    monkeypatch.setenv(health.ENV_HEALTH_FILE, str(path))
    assert StopFlag(install=False).heartbeat is None  # only the process's own flag
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        flag = StopFlag(install=True)
        assert not path.exists()
        assert not flag.is_set()
        assert path.exists()
        monkeypatch.delenv(health.ENV_HEALTH_FILE)
        assert StopFlag(install=True).heartbeat is None
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path == "/healthz" else 503
        body = b"ok\n" if code == 200 else b"loop stalled\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_port():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_health_http_uses_the_env_port(http_port, monkeypatch, capsys):
    monkeypatch.setenv(health.ENV_HTTP_PORT, str(http_port))
    assert health.main(["--http", "/healthz"]) == 0
    assert "200 ok" in capsys.readouterr().out
    assert health.main(["--http", "/stalled"]) == 1
    assert "503 loop stalled" in capsys.readouterr().out


def test_health_http_port_from_config_and_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(health.ENV_HTTP_PORT, raising=False)
    config = tmp_path / "azgo.yaml"
    config.write_text("broker:\n  http_port: 1\n")  # nothing listens on port 1
    assert health.broker_http_port(str(config)) == 1
    assert health.main(["--http", "/healthz", "--config", str(config), "--timeout", "2"]) == 1
    assert "unhealthy: http://127.0.0.1:1/healthz" in capsys.readouterr().out
    config.write_text("broker:\n  http_port: nope\n")
    assert health.main(["--http", "/healthz", "--config", str(config)]) == 1
    assert "cannot find the broker's HTTP port" in capsys.readouterr().out


# --- keys ------------------------------------------------------------------------------------
def test_create_keys_layout_and_loadable(tmp_path):
    root = tmp_path / "keys"
    assert create_keys(root, ["learner", "selfplay", "gpu1"]) == ["broker", "learner", "selfplay", "gpu1"]
    public, secret = zmq.auth.load_certificate(root / "broker.key_secret")
    assert secret and zmq.auth.load_certificate(root / "broker.key") == (public, None)
    for name in ("learner", "selfplay", "gpu1"):
        pub, sec = zmq.auth.load_certificate(root / "workers" / f"{name}.key_secret")
        assert sec and zmq.auth.load_certificate(root / "authorized" / f"{name}.key")[0] == pub
    assert sorted(p.name for p in (root / "authorized").iterdir()) == ["gpu1.key", "learner.key", "selfplay.key"]
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "workers").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "authorized").stat().st_mode) == 0o755
    assert not [p for p in (root / "workers").iterdir() if p.name.startswith(".new-")]


def test_create_keys_keeps_existing_pairs(tmp_path):
    root = tmp_path / "keys"
    create_keys(root, ["selfplay"])
    before = (root / "broker.key_secret").read_text(), (root / "workers" / "selfplay.key_secret").read_text()
    assert create_keys(root, ["selfplay", "gpu2"]) == ["gpu2"]
    assert ((root / "broker.key_secret").read_text(), (root / "workers" / "selfplay.key_secret").read_text()) == before


@pytest.mark.parametrize("name", ["broker", "../evil", "", "a b"])
def test_create_keys_refuses_bad_names(tmp_path, name):
    with pytest.raises(ValueError, match="bad key name"):
        create_keys(tmp_path / "keys", [name])
    assert not (tmp_path / "keys").exists()


def test_keys_main_adds_config_hosts(tmp_path, capsys):
    config = tmp_path / "azgo.yaml"
    config.write_text("distributed:\n  workers:\n    - {host: gpu1.example.org, user: me}\n")
    assert keys_main(["--dir", str(tmp_path / "keys"), "--config", str(config), "extra"]) == 0
    assert "created broker, learner, selfplay, evaluator, extra, gpu1.example.org" in capsys.readouterr().out
    assert (tmp_path / "keys" / "workers" / "gpu1.example.org.key_secret").exists()
    assert keys_main(["--dir", str(tmp_path / "keys"), "../x"]) == 2
    assert "bad key name" in capsys.readouterr().err


def test_a_revoked_key_stays_revoked_when_keys_are_made_again(tmp_path):
    root = tmp_path / "keys"
    create_keys(root, ["selfplay", "gpu7"])
    (root / "authorized" / "gpu7.key").unlink()  # the operator revokes gpu7
    assert create_keys(root, ["selfplay", "gpu7", "gpu8"]) == ["gpu8"]  # make keys / make run / make deploy again
    assert sorted(p.name for p in (root / "authorized").iterdir()) == ["gpu8.key", "selfplay.key"]


def test_malformed_client_keys_are_named_before_any_socket(tmp_path):
    from azgo_core.config import load_settings
    from azgo_runtime.curve import CurveKeyError, client_curve

    root = tmp_path / "keys"
    create_keys(root, ["selfplay"])
    settings = load_settings(None, security={"curve": True, "keys_dir": str(root)})
    assert set(client_curve(settings, "selfplay")) == {"publickey", "secretkey", "serverkey"}
    secret = root / "workers" / "selfplay.key_secret"
    text = secret.read_text()
    secret.write_text(text.replace('secret-key = "', 'secret-key = "~~', 1))  # garbled
    with pytest.raises(CurveKeyError, match="selfplay.key_secret holds a malformed key"):
        client_curve(settings, "selfplay")
    secret.unlink()
    with pytest.raises(CurveKeyError, match="missing key file .*selfplay.key_secret"):
        client_curve(settings, "selfplay")
