"""The images and compose.yaml, run by Docker's real engine and real compose.

The images are built once per session (docker/build.sh, as `make images`: on the local base
image and wheelhouse that deploy/ci-docker.sh records in build/docker.env, when there is one). Each
system test brings up its own compose project (a unique name, free host ports on 127.0.0.1, the
tiny 5x5 config from procs.TINY mounted as the config file) and takes it down with its volumes
(``down -v``) whatever happens.

Without an engine (``docker info`` fails) or without compose these tests skip, except with
CI=true, where they fail: CI provides Docker (.ci/run calls deploy/ci-docker.sh).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from docker_helpers import ROOT, TAG, compose_env, require_docker
from procs import free_ports, get_json, tiny_config, wait_for

from azgo_tools.keys import create_keys

SERVICES = ("broker", "learner", "selfplay", "evaluator")
BUILD_TIMEOUT = 900  # seconds for the cold build of all three images on a small machine
UP_TIMEOUT = 180


# --- the engine and the images -----------------------------------------------------------------
@pytest.fixture(scope="session")
def docker_ready() -> None:
    require_docker()


def run(cmd: list[str], env: dict[str, str], timeout: float, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("keys")
    create_keys(path, ["learner", "selfplay", "evaluator"])
    return path


@pytest.fixture(scope="session")
def images(docker_ready) -> float:
    """Build the three images with docker/build.sh (what `make images` runs); returns the seconds it took."""
    t0 = time.monotonic()
    out = run(["bash", "docker/build.sh", *SERVICES], compose_env(), BUILD_TIMEOUT).stdout
    print(out)
    return time.monotonic() - t0


# --- one compose project -----------------------------------------------------------------------
class Stack:
    """One compose project of the tiny config: ``up``, the broker's /status, ``down -v``."""

    def __init__(self, tmp_path: Path, keys: Path):
        self.project = f"azgotest-{uuid.uuid4().hex[:10]}"
        config = tiny_config(tmp_path)  # its ports and data dirs are replaced by compose's layout
        router, pub, http = free_ports(3)
        self.status_url = f"http://127.0.0.1:{http}/status"
        self.env = compose_env(AZGO_CONFIG_FILE=str(config), AZGO_KEYS_DIR=str(keys), AZGO_ENV_FILE=str(tmp_path / "none.env"),
                               AZGO_PUBLISH_ADDR="127.0.0.1", AZGO_ROUTER_PORT=str(router), AZGO_PUB_PORT=str(pub),
                               AZGO_HTTP_PORT=str(http), AZGO_HEALTH_INTERVAL="2s")

    def compose(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        return run(["docker", "compose", "-p", self.project, *args], self.env, timeout, check)

    def up(self, selfplay: int = 1) -> None:
        """Start and wait until every container is healthy (compose's --wait)."""
        self.compose("up", "-d", "--no-build", "--wait", "--wait-timeout", str(UP_TIMEOUT), "--scale", f"selfplay={selfplay}",
                     timeout=UP_TIMEOUT + 60)

    def status(self) -> dict:
        return get_json(self.status_url)

    def containers(self, service: str, all_states: bool = False) -> list[str]:
        out = self.compose("ps", *(["-a"] if all_states else []), "-q", service).stdout
        return sorted(out.split())

    def ps(self) -> list[dict]:
        out = self.compose("ps", "-a", "--format", "json").stdout.strip()
        if out.startswith("["):
            return json.loads(out)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def logs(self, container: str) -> str:
        out = run(["docker", "logs", container], self.env, 30)
        return out.stdout + out.stderr  # the services log to stderr

    def down(self) -> None:
        # the logs go to the captured output, which pytest shows when the test failed
        print(self.compose("logs", "--no-color", "--tail", "60", timeout=60, check=False).stdout)
        self.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=120, check=False)


@pytest.fixture
def stack(images, keys_dir, tmp_path):
    s = Stack(tmp_path, keys_dir)
    try:
        yield s
    finally:
        s.down()


def hostname(container: str) -> str:
    """A container's host name: the self-play worker id it reports to the broker."""
    return run(["docker", "inspect", "--format", "{{.Config.Hostname}}", container], os.environ.copy(), 30).stdout.strip()


def acked_batches(log: str) -> list[str]:
    """The batch ids a worker logged as stored by the broker (acknowledged after its fsync)."""
    return re.findall(r"batch (\S+) (?:stored as seq \d+|was already stored)", log)


def stored_batches(stack: Stack, tmp_path: Path) -> set[str]:
    """Every batch id in the broker's game store, read from its volume by the broker's own store code."""
    from azgo_broker.store import GameStore

    broker = stack.containers("broker", all_states=True)[0]
    dest = tmp_path / "store"
    run(["docker", "cp", f"{broker}:/data/broker/games", str(dest)], stack.env, 60)
    store = GameStore(dest, fsync=False)
    try:
        return {e.header.batch_id for e in store.entries}
    finally:
        store.close()


# --- tests -------------------------------------------------------------------------------------
def test_compose_config_layout(docker_ready, keys_dir):
    """compose.yaml as the issue describes it: scaling self-play, volumes, health, secrets, ports, GPU, monitoring."""
    env = compose_env(AZGO_KEYS_DIR=str(keys_dir))
    cfg = json.loads(run(["docker", "compose", "config", "--format", "json"], env, 60).stdout)
    services = cfg["services"]
    assert set(services) == set(SERVICES)  # prometheus only with --profile monitoring
    assert [p["target"] for p in services["broker"]["ports"]] == [5555, 5556, 9100]
    assert {p["host_ip"] for p in services["broker"]["ports"]} == {"127.0.0.1"}
    for name in ("learner", "selfplay", "evaluator"):
        assert not services[name].get("ports"), f"{name} publishes ports"
        assert services[name]["depends_on"]["broker"]["condition"] == "service_healthy"
    assert "container_name" not in services["selfplay"]
    assert {v["source"]: v["target"] for s in ("broker", "learner", "evaluator") for v in services[s]["volumes"]} == {
        "broker-data": "/data/broker", "learner-data": "/data/learner", "evaluator-data": "/data/evaluator"}
    for name, svc in services.items():
        assert svc["healthcheck"]["test"][:3] == ["CMD", "python", "-m"], name
        assert svc["restart"] == "unless-stopped", name
        assert svc["environment"]["AZGO_DISTRIBUTED__BROKER_HOST"] == "broker"
    assert {s["target"] for s in services["broker"]["secrets"]} == {"broker.key_secret", "authorized"}
    assert {s["target"] for s in services["selfplay"]["secrets"]} == {"broker.key", "selfplay.key_secret"}
    assert {s["target"] for s in services["evaluator"]["secrets"]} == {"broker.key", "evaluator.key_secret"}
    assert services["broker"]["environment"]["AZGO_SECURITY__KEYS_DIR"] == "/run/secrets"

    gpu = json.loads(run(["docker", "compose", "-f", "compose.yaml", "-f", "compose.gpu.yaml", "config", "--format", "json"],
                         env, 60).stdout)["services"]["selfplay"]
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    assert gpu["build"]["target"] == "selfplay-gpu" and gpu["environment"]["AZGO_SELF_PLAY__DEVICE"] == "cuda"

    monitoring = json.loads(run(["docker", "compose", "--profile", "monitoring", "config", "--format", "json"],
                                env, 60).stdout)["services"]["prometheus"]
    assert monitoring["depends_on"]["broker"]["condition"] == "service_healthy"
    assert monitoring["build"]["target"] == "prometheus" and monitoring["image"].startswith("azgo/prometheus:")  # no Docker Hub
    assert {c["target"] for c in monitoring["configs"]} == {"/etc/prometheus/prometheus.yml", "/etc/prometheus/alerts.yml"}
    assert "broker:9100" in (ROOT / "deploy" / "prometheus.yml").read_text()


# The operator's tools and what only they need stay out of the service images (issue 14).
TOOLS_ONLY = ("azgo_tools", "matplotlib", "rich")


def test_container_images_unprivileged_without_compilers_or_tools(images):
    env = compose_env()
    probe = ("import importlib.util as u, azgo_core, azgo_runtime; "
             f"print(*[m for m in {TOOLS_ONLY!r} if u.find_spec(m)])")
    for service in SERVICES:
        image = f"azgo/{service}:{TAG}"
        out = run(["docker", "run", "--rm", "--entrypoint", "sh", image, "-c",
                   f"id -u; for c in gcc cc g++ c++ clang azgo; do command -v $c; done; python -c \"{probe}\""],
                  env, 60).stdout.split()
        assert out == ["10001"], f"{image}: runs as uid {out[0]}; compilers, the azgo command or tools' packages {out[1:]}"
        health = run(["docker", "image", "inspect", "--format", "{{json .Config.Healthcheck.Test}}", image], env, 30).stdout
        assert "azgo_runtime.health" in health, f"{image} has no health check: {health}"


def test_compose_up_trains_and_stores_games(stack):
    """`docker compose up`: the learner publishes generation 1 and the broker stores the worker's games."""
    stack.up()
    states = {c["Service"]: c.get("Health") for c in stack.ps()}
    assert states == {"broker": "healthy", "learner": "healthy", "selfplay": "healthy", "evaluator": "healthy"}, states
    status = wait_for(lambda: (s := stack.status())["model"] and s["model"]["generation"] >= 1 and s["totals"]["games"] > 0 and s,
                      150, "generation 1 published and games stored", interval=0.5)
    assert status["totals"]["positions"] > 0 and status["learner"]["step"] > 0
    worker = stack.containers("selfplay")[0]
    assert [w["worker_id"] for w in status["workers"]] == [hostname(worker)]
    # the data is on the named volumes
    out = stack.compose("exec", "-T", "broker", "sh", "-c", "ls /data/broker/games /data/broker/models").stdout
    assert "000000.seg" in out and "000001.safetensors" in out


def test_compose_scale_three_then_one_killed(stack, tmp_path):
    """--scale selfplay=3: three workers Active; one killed: Offline, the others go on, no acked game lost."""
    stack.up(selfplay=3)
    workers = stack.containers("selfplay")
    assert len(workers) == 3
    ids = {hostname(c): c for c in workers}

    def active():
        s = stack.status()
        return s["workers_by_state"]["Active"] == 3 and {w["worker_id"] for w in s["workers"]} == set(ids) and s
    wait_for(active, 120, "three workers Active", interval=0.5)
    victim_id, victim = sorted(ids.items())[0]
    wait_for(lambda: acked_batches(stack.logs(victim)), 120, "a batch of the worker to kill acknowledged", interval=0.5)
    run(["docker", "kill", victim], stack.env, 30)
    killed_at = stack.status()
    totals = [killed_at["totals"]["games"]]

    def offline_and_going_on():
        s = stack.status()
        totals.append(s["totals"]["games"])
        by_id = {w["worker_id"]: w for w in s["workers"]}
        others = [by_id[i] for i in ids if i != victim_id]
        return (by_id[victim_id]["state"] == "Offline" and all(w["state"] == "Active" for w in others)
                and s["totals"]["games"] > killed_at["totals"]["games"] and s)
    after = wait_for(offline_and_going_on, 120, "the killed worker Offline, the others Active, games still arriving",
                     interval=0.5)
    assert totals == sorted(totals), f"stored games went down: {totals}"
    assert after["workers_by_state"]["Offline"] == 1 and after["workers_by_state"]["Active"] == 2
    inspect = run(["docker", "inspect", "--format", "{{.State.Status}}", victim], stack.env, 30).stdout.strip()
    assert inspect == "exited", f"a killed worker stays down (restart: unless-stopped), but it is {inspect}"

    # every batch any worker saw acknowledged is in the store, the killed worker's included
    stack.compose("stop", "--timeout", "20", "selfplay", timeout=90)
    acked = {c: acked_batches(stack.logs(c)) for c in workers}
    stored = stored_batches(stack, tmp_path)
    for container, batches in acked.items():
        missing = set(batches) - stored
        assert not missing, f"acknowledged batches of {container} missing from the store: {sorted(missing)[:5]}"
    for container in workers:
        if container != victim:
            assert re.search(r"stopped: games=\d+ .*acked=\d+", stack.logs(container)), f"{container} did not stop cleanly"


def test_compose_monitoring_scrapes_the_broker_and_alerts_on_a_killed_worker(images, keys_dir, tmp_path):
    """--profile monitoring: Prometheus (Debian's package, built here) scrapes the broker's azgo_ series and raises
    AzgoWorkerOffline once a self-play container is killed. The real rules, with every `for:` cut to 1 s and 1 s
    scrapes and evaluations, so the test waits seconds, not minutes."""
    run(["bash", "docker/build.sh", "prometheus"], compose_env(), BUILD_TIMEOUT)
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    rules = yaml.safe_load((ROOT / "deploy" / "alerts.yml").read_text())
    for rule in rules["groups"][0]["rules"]:
        rule["for"] = "1s"
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    stack = Stack(tmp_path, keys_dir)
    prometheus = f"http://127.0.0.1:{free_ports(1)[0]}"
    stack.env.update(AZGO_PROMETHEUS_PORT=prometheus.rsplit(":", 1)[1], AZGO_PROMETHEUS_CONFIG=str(tmp_path / "prometheus.yml"),
                     AZGO_PROMETHEUS_RULES=str(tmp_path / "alerts.yml"))
    try:
        stack.compose("--profile", "monitoring", "up", "-d", "--no-build", "--wait", "--wait-timeout", str(UP_TIMEOUT),
                      timeout=UP_TIMEOUT + 60)
        worker = stack.containers("selfplay")[0]
        wait_for(lambda: [w["state"] for w in stack.status()["workers"]] == ["Active"], 120, "the worker Active",
                 interval=0.5)

        def azgo_series():
            names = get_json(f"{prometheus}/api/v1/label/__name__/values")["data"]
            return {"azgo_workers", "azgo_model_generation", "azgo_store_free_bytes"} <= set(names) and names
        wait_for(azgo_series, 60, "azgo_ series in Prometheus", interval=0.5)
        up = get_json(f"{prometheus}/api/v1/query?query=up")["data"]["result"]
        assert [(r["metric"]["job"], r["value"][1]) for r in up] == [("azgo-broker", "1")]
        groups = get_json(f"{prometheus}/api/v1/rules")["data"]["groups"]
        assert {r["name"] for g in groups for r in g["rules"]} >= {"AzgoWorkerOffline", "AzgoNoNewGeneration",
                                                                   "AzgoSelfPlayStalled", "AzgoStoreDiskNearlyFull",
                                                                   "AzgoOneColourWinning"}

        def offline_alerts():
            alerts = get_json(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
            return [a["state"] for a in alerts if a["labels"]["alertname"] == "AzgoWorkerOffline"]
        assert offline_alerts() == []  # the worker is alive: nothing to say yet
        run(["docker", "kill", worker], stack.env, 30)
        states = wait_for(offline_alerts, 60, "AzgoWorkerOffline in /api/v1/alerts", interval=0.5)
        assert set(states) <= {"pending", "firing"}, states
    finally:
        print(stack.compose("--profile", "monitoring", "logs", "--no-color", "--tail", "40", timeout=60, check=False).stdout)
        stack.compose("--profile", "monitoring", "down", "-v", "--remove-orphans", "--timeout", "10", timeout=120, check=False)
