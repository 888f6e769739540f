"""Helpers for tests that run the services as real processes on loopback.

``tiny_config(tmp_path, **sections)`` writes a YAML config for a 5x5 board, a tiny net and a
few visits, with free ports and data under ``tmp_path``; ``Service`` starts
``python -m azgo_<name> --config FILE`` with its output in a log file the test prints on
failure; ``wait_for`` polls a condition with a deadline (never a bare sleep).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

TINY: dict[str, dict] = {
    "board": {"size": 5, "komi": 7.5},
    "model": {"blocks": 1, "channels": 8, "value_hidden": 8, "history": 2},
    "search": {"visits": 8, "cheap_visits": 4, "full_search_prob": 0.5},
    "self_play": {"parallel_games": 8, "batch_size": 8},
    "train": {"batch_size": 32, "warmup_steps": 0, "lr": 0.01},
    "learner": {"window_positions": 2000, "min_positions": 40, "steps_per_generation": 4,
                "checkpoint_interval": 1.0, "report_interval": 0.3, "max_samples_per_position": 4.0},
    "broker": {"status_interval": 0.2},
    "distributed": {"batch_size": 4, "sync_interval": 1, "heartbeat_interval": 0.2, "liveness": 5,
                    "reconnect_min": 0.1, "reconnect_max": 1.0, "request_timeout": 3.0},
    # off unless a test turns it on: GNU Go matches would take the CPU from the other services
    "evaluation": {"enabled": False, "games_per_match": 2, "visits": 4, "gnugo_every": 0, "random_every": 1},
}


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on loopback right now."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def tiny_config(tmp_path: Path, **sections: dict) -> Path:
    """Write the tiny config (``sections`` merged over ``TINY``) to tmp_path/azgo.yaml."""
    router, pub, http = free_ports(3)
    data = {k: dict(v) for k, v in TINY.items()}
    data["broker"].update({"router_port": router, "pub_port": pub, "http_port": http,
                           "data_dir": str(tmp_path / "broker")})
    data["learner"]["data_dir"] = str(tmp_path / "learner")
    data["self_play"]["data_dir"] = str(tmp_path / "selfplay")
    data["evaluation"]["data_dir"] = str(tmp_path / "evaluator")
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    path = tmp_path / "azgo.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def config_data(path: Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def http_url(config: Path, route: str) -> str:
    return f"http://127.0.0.1:{config_data(config)['broker']['http_port']}{route}"


def router_endpoint(config: Path) -> str:
    return f"tcp://127.0.0.1:{config_data(config)['broker']['router_port']}"


def pub_endpoint(config: Path) -> str:
    return f"tcp://127.0.0.1:{config_data(config)['broker']['pub_port']}"


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns a truthy value (returned) or ``timeout`` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # not ready yet (connection refused, missing file...)
            last_exc = e
        time.sleep(interval)
    detail = f" (last error: {last_exc!r})" if last_exc else ""
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{detail}")


def get_json(url: str, timeout: float = 2.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def get_text(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def metric_samples(url: str) -> dict[str, float]:
    """Every sample of a /metrics page as {'name{label="v"}': value}, parsed by prometheus_client."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(get_text(url)):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def clean_environ() -> dict[str, str]:
    """os.environ without AZGO_* settings overrides, so a developer's exports never reach the tests' services."""
    def setting(key: str) -> bool:
        return key.startswith("AZGO_") and ("__" in key or key in ("AZGO_CONFIG", "AZGO_WORKER_ID"))

    return {k: v for k, v in os.environ.items() if not setting(k)}


class Service:
    """One service process (``python -m azgo_<name>``) with its log in ``log_path``.

    ``prefix`` goes before the command, e.g. ``("ip", "netns", "exec", NS)`` (which execs: the pid stays the service's).
    """

    def __init__(self, name: str, config: Path, *args: str, log_dir: Path, env: dict | None = None, tag: str = "",
                 prefix: tuple[str, ...] = ()):
        self.name = name
        self.log_path = Path(log_dir) / f"{tag or name}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        full_env = {**clean_environ(), "PYTHONUNBUFFERED": "1", **(env or {})}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*prefix, sys.executable, "-m", f"azgo_{name}", "--config", str(config), *args],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=full_env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; SIGKILL if it does not exit within ``timeout``. Returns the exit status."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        self.proc.kill()
        self.proc.wait()
        self._log.close()

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)
