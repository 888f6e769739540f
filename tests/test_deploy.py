"""make deploy / restart / undeploy / doctor against real hosts: containers of ours with sshd and their own engine.

A test host (deploy/testhost) is a container of this machine's engine running sshd and a
Docker engine of its own (overlay2 on a volume: vfs would copy the 1 GB image once per layer),
started with the flags /work/shared/CONTAINERS.md names. The test generates an SSH key, starts
the hosts with it, and drives everything through make, exactly as a user would, with
AZGO_DEPLOY_DIR and AZGO_KEYS_DIR pointing into its temporary folder. The broker and the learner
run here as processes bound to this machine's address on the hosts' bridge (nothing listens on
other interfaces); the hosts' workers reach them there and play the tiny 5x5 configuration.

Everything started here is removed in ``finally`` blocks: the hosts (with their volumes), the
docker contexts, the processes. Without an engine the tests skip, except with CI=true (fail).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from docker_helpers import ROOT, TAG, compose_env, require_docker
from procs import TINY, Service, config_data, get_json, tiny_config, wait_for

from azgo_tools.keys import create_keys

TESTHOST_IMAGE = "azgo/testhost:test"
SELFPLAY_IMAGE = f"azgo/selfplay:{TAG}"
HOST_FLAGS = ["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
              "--security-opt", "apparmor=unconfined", "--device-cgroup-rule", "a *:* rwm",
              "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--cgroupns", "host"]
BUILD_TIMEOUT = 900
DEPLOY_TIMEOUT = 420  # checks, compressing the image once, loading it on two hosts at once, compose up


def sh(cmd: list[str], timeout: float = 60, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


@pytest.fixture(scope="module")
def docker_ready() -> None:
    require_docker()


@pytest.fixture(scope="module")
def testhost_image(docker_ready) -> str:
    """deploy/testhost built on the local base image when there is one (build/docker.env)."""
    base = compose_env().get("AZGO_BASE_IMAGE")
    sh(["docker", "build", "-q", "-t", TESTHOST_IMAGE, *(["--build-arg", f"BASE_IMAGE={base}"] if base else []),
        "deploy/testhost"], BUILD_TIMEOUT, env=compose_env(DOCKER_BUILDKIT="0"))
    return TESTHOST_IMAGE


@pytest.fixture(scope="module")
def selfplay_image(docker_ready) -> str:
    """azgo/selfplay:test, as test_containers builds it (the layers are shared: a second build is a cache hit)."""
    sh(["bash", "docker/build.sh", "selfplay"], BUILD_TIMEOUT, env=compose_env())
    return SELFPLAY_IMAGE


@pytest.fixture
def ssh_key(tmp_path) -> Path:
    key = tmp_path / "id_ed25519"
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "azgo-test", "-f", str(key)])
    return key


class SshHost:
    """One test host container: sshd for root with ``key``, and an engine unless ``engine`` is 'none'/'stopped'."""

    def __init__(self, image: str, key: Path, engine: str = "dockerd"):
        self.name = f"azgo-testhost-{uuid.uuid4().hex[:8]}"
        sh(["docker", "run", "-d", "--name", self.name, *HOST_FLAGS, "--mount", "type=volume,dst=/var/lib/docker",
            "-e", f"AZGO_AUTHORIZED_KEY={key.with_suffix('.pub').read_text().strip()}", "-e", f"AZGO_ENGINE={engine}", image])
        self.ip = sh(["docker", "inspect", "--format", "{{.NetworkSettings.IPAddress}}", self.name]).stdout.strip()
        self.engine = engine

    def wait_ready(self) -> None:
        wait_for(lambda: socket.create_connection((self.ip, 22), timeout=1).close() is None, 30, f"sshd on {self.ip}")
        if self.engine == "dockerd":
            wait_for(lambda: self.exec("docker", "info", check=False).returncode == 0, 60, f"the engine on {self.ip}",
                     interval=0.5)
            driver = self.exec("docker", "info", "--format", "{{.Driver}}").stdout.strip()
            assert driver == "overlay2", f"the test host's engine stores images with {driver}"

    def exec(self, *cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """A command inside the host, not through the code under test: the tests' own view of the host."""
        return sh(["docker", "exec", self.name, *cmd], timeout, check)

    def workers(self) -> dict[str, str]:
        """The host's azgo worker containers: worker id -> started at."""
        out = self.exec("docker", "ps", "-a", "--filter", "label=org.azgo.worker", "--format",
                        '{{.Label "org.azgo.worker"}} {{.ID}}').stdout.split("\n")
        found = {}
        for line in filter(None, out):
            worker, cid = line.split()
            found[worker] = self.exec("docker", "inspect", "--format", "{{.State.StartedAt}}", cid).stdout.strip()
        return found

    def remove(self) -> None:
        sh(["docker", "rm", "-f", "-v", self.name], 120, check=False)
        sh(["docker", "context", "rm", "-f", f"azgo-{self.ip}"], 30, check=False)


@pytest.fixture
def hosts(testhost_image, ssh_key):
    made: list[SshHost] = []

    def start(n: int, engine: str = "dockerd") -> list[SshHost]:
        new = [SshHost(testhost_image, ssh_key, engine) for _ in range(n)]
        made.extend(new)
        for h in new:
            h.wait_ready()
        return new

    try:
        yield start
    finally:
        for h in made:
            print(h.exec("sh", "-c", "tail -n 5 /var/log/dockerd.log 2>/dev/null", check=False).stdout)
            h.remove()


def local_address_towards(ip: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((ip, 22))
        return s.getsockname()[0]


def make(target: str, tmp_path: Path, timeout: float, **variables: str) -> subprocess.CompletedProcess:
    """``make TARGET VAR=...`` with the deploy state and keys in tmp_path; output shown by pytest on failure."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZGO_")}
    env.update(AZGO_DEPLOY_DIR=str(tmp_path / "deploy"), AZGO_KEYS_DIR=str(tmp_path / "keys"), COLUMNS="200")
    p = subprocess.run(["make", "--no-print-directory", target, *(f"{k}={v}" for k, v in variables.items())], cwd=ROOT,
                       capture_output=True, text=True, timeout=timeout, env=env)
    print(f"$ make {target} {variables}\n{p.stdout}\n{p.stderr}")
    return p


def test_deploy_two_hosts_restart_undeploy(selfplay_image, hosts, ssh_key, tmp_path):
    """make deploy to two hosts: both workers Active, their games stored; restart one; undeploy both."""
    t0 = time.monotonic()
    a, b = hosts(2)
    here = local_address_towards(a.ip)  # the bridge's address on this machine: only the test hosts reach it
    # beyond loopback, so CURVE is on: the broker admits the keys deploy makes for the workers
    # (keys/authorized/, reloaded without a restart) and the learner's, made here
    create_keys(tmp_path / "keys", ["learner"])
    # b weighs 2 (a machine twice as fast): its worker plays twice the games at once
    config = tiny_config(tmp_path, broker={"bind": here}, distributed={"broker_host": here, "worker_weights": {b.ip: 2.0}},
                         security={"keys_dir": str(tmp_path / "keys")})
    status_url = f"http://{here}:{config_data(config)['broker']['http_port']}/status"
    broker = Service("broker", config, log_dir=tmp_path)
    learner = Service("learner", config, log_dir=tmp_path)
    ids = {a: f"{a.ip}-cpu", b: f"{b.ip}-cpu"}
    common = dict(CONFIG=str(config), SSH_KEY=str(ssh_key), IMAGE=selfplay_image)
    try:
        wait_for(lambda: get_json(status_url)["model"], 60, "generation 0 published", interval=0.2)
        started = time.monotonic()
        p = make("deploy", tmp_path, DEPLOY_TIMEOUT, HOSTS=f"root@{a.ip},root@{b.ip}", WAIT="120", **common)
        print(f"make deploy to two hosts: {time.monotonic() - started:.0f} s")
        assert p.returncode == 0, "make deploy failed"
        assert "all 2 worker(s) Active" in p.stdout  # WAIT: deploy itself waited for them at the broker
        assert re.search(r"shipped azgo/selfplay:\S+ .* to root@\S+, root@\S+ in \d+ s", p.stdout), "the image was not shipped"
        for host in (a, b):
            assert list(host.workers()) == [ids[host]], f"{host.ip} runs {host.workers()}"
            compose = (tmp_path / "deploy" / host.ip / "compose.yaml").read_text()
            assert "bind:" in compose and "size: 5" in compose  # the workers play the broker's tiny config

        def both_active_with_games():
            by_id = {w["worker_id"]: w for w in get_json(status_url)["workers"]}
            return all(by_id.get(i, {}).get("state") == "Active" and by_id[i]["games_total"] > 0 for i in ids.values()) and by_id
        by_id = wait_for(both_active_with_games, 120, "both deployed workers Active with games played", interval=0.5)
        games_at_once = TINY["self_play"]["parallel_games"]
        assert by_id[ids[a]]["parallel_games"] == games_at_once and by_id[ids[b]]["parallel_games"] == 2 * games_at_once
        assert f"(weight 2: {2 * games_at_once} games at once per worker)" in p.stdout
        table = make("status", tmp_path, 60, STATUS_ARGS=f"--url http://{here}:{config_data(config)['broker']['http_port']}")
        rows = {line.split("│")[1].strip(): line for line in table.stdout.splitlines() if line.count("│") > 5}
        assert f"│ {2 * games_at_once:>7} │" in rows[ids[b]] and f"│ {games_at_once:>7} │" in rows[ids[a]], table.stdout

        # a second deploy changes nothing: the image is there, the containers stay up
        before = a.workers()
        p = make("deploy", tmp_path, DEPLOY_TIMEOUT, HOSTS=f"root@{a.ip}", **common)
        assert p.returncode == 0 and "nothing to ship" in p.stdout and "shipped" not in p.stdout
        assert a.workers() == before, "redeploying an unchanged host restarted its worker"

        # restart one worker: a new container start, Active again; the other host untouched
        b_before = b.workers()
        p = make("restart", tmp_path, 120, WORKER=ids[a], CONFIG=str(config))
        assert p.returncode == 0 and f"restarted {ids[a]}" in p.stdout
        assert a.workers()[ids[a]] != before[ids[a]], "the worker's container did not restart"
        assert b.workers() == b_before
        wait_for(lambda: {w["worker_id"]: w["state"] for w in get_json(status_url)["workers"]}[ids[a]] == "Active", 60,
                 "the restarted worker Active again", interval=0.3)
        logs = make("logs", tmp_path, 60, WORKER=ids[a], TAIL="20", CONFIG=str(config))
        lines = logs.stdout.splitlines()
        assert logs.returncode == 0 and len(lines) >= 20 and all(line.startswith(f"{a.ip} cpu-1 ") for line in lines[-20:])
        assert any("azgo.selfplay" in line for line in lines)

        # undeploy one host: its worker gone and Offline, training goes on with the other
        p = make("undeploy", tmp_path, 180, HOSTS=f"root@{a.ip}", CONFIG=str(config))
        assert p.returncode == 0 and f"root@{a.ip}: 1 worker container(s) stopped and removed" in p.stdout
        assert a.workers() == {} and list(b.workers()) == [ids[b]]
        games = get_json(status_url)["totals"]["games"]

        def a_offline_b_playing():
            s = get_json(status_url)
            states = {w["worker_id"]: w["state"] for w in s["workers"]}
            return states[ids[a]] == "Offline" and states[ids[b]] == "Active" and s["totals"]["games"] > games
        wait_for(a_offline_b_playing, 60, "the undeployed worker Offline, the other one's games still arriving", interval=0.3)

        # undeploy the rest (every deployed host): containers gone, Offline at the broker, contexts removed
        p = make("undeploy", tmp_path, 180, CONFIG=str(config))
        assert p.returncode == 0, "make undeploy failed"
        assert b.workers() == {}
        wait_for(lambda: all(w["state"] == "Offline" for w in get_json(status_url)["workers"]), 30,
                 "the undeployed workers Offline", interval=0.3)
        contexts = sh(["docker", "context", "ls", "--format", "{{.Name}}"]).stdout.split()
        assert not {f"azgo-{a.ip}", f"azgo-{b.ip}"} & set(contexts)
        assert not (tmp_path / "deploy" / a.ip).exists() and not (tmp_path / "deploy" / b.ip).exists()
    finally:
        learner.stop()
        broker.stop()
        print(f"whole test (hosts, broker, deploy, restart, undeploy): {time.monotonic() - t0:.0f} s")
    # every stored batch names its worker: games from both hosts are in the broker's store
    from azgo_broker.store import GameStore

    store = GameStore(tmp_path / "broker" / "games", fsync=False)
    try:
        workers = {e.header.batch_id.rsplit("-", 1)[0] for e in store.entries}
    finally:
        store.close()
    assert set(ids.values()) <= workers, f"stored batches come from {workers}"


def test_doctor_reports_missing_and_stopped_engines(selfplay_image, testhost_image, hosts, ssh_key, tmp_path):
    """make doctor: a host without Docker and one whose engine is stopped, each with its fix; exit status 1.

    The image to ship is the one this suite builds (IMAGE=), so the local checks pass on a machine
    that never built the default azgo/selfplay:dev: the only problems are the two engines."""
    (none,) = hosts(1, engine="none")
    (stopped,) = hosts(1, engine="stopped")
    config = tiny_config(tmp_path)
    p = make("doctor", tmp_path, 120, HOSTS=f"root@{none.ip},root@{stopped.ip}", SSH_KEY=str(ssh_key),
             CONFIG=str(config), GPUS="none", IMAGE=selfplay_image)
    assert p.returncode != 0
    rows = doctor_rows(p.stdout)
    assert rows[(f"root@{none.ip}", "docker")][:2] == ("FAIL", "Docker is not installed")
    assert rows[(f"root@{none.ip}", "docker")][2].startswith("install Docker Engine")
    assert rows[(f"root@{stopped.ip}", "docker")][:2] == ("FAIL", "the engine is not running")
    assert "systemctl enable --now docker" in rows[(f"root@{stopped.ip}", "docker")][2]
    for host in (none, stopped):
        assert rows[(f"root@{host.ip}", "ssh")][0] == "ok"
        assert rows[(f"root@{host.ip}", "gpu")][0] == "skip"  # not checked after the engine failed
    assert "new host, its key SHA256:" in p.stdout  # unknown hosts are scanned into the state's known_hosts, and it says so
    assert rows[("local", "image")][0] == "ok", rows[("local", "image")]
    assert "2 problem(s)" in p.stdout


def doctor_rows(text: str) -> dict[tuple[str, str], tuple[str, str, str]]:
    """The doctor's table as {(host, check): (result, detail, fix)}; wrapped cells joined."""
    rows: dict[tuple[str, str], list[str]] = {}
    host = key = None
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) != 5:
            continue
        host = cells[0] or host
        if cells[1]:
            key = (host, cells[1])
            rows[key] = cells[2:]
        elif key:  # a wrapped line continues the row above
            rows[key] = [" ".join(filter(None, pair)) for pair in zip(rows[key], cells[2:])]
    return {k: tuple(v) for k, v in rows.items()}
