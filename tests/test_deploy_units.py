"""azgo deploy's parts without hosts: specs, names, the compose project, the ssh configuration, GPU checks, errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from azgo_core.config import load_settings
from azgo_tools.cli import build_parser
from azgo_tools.deploy import checks, manage
from azgo_tools.deploy.hosts import (
    GpuRequest,
    Host,
    HostSpecError,
    check_address,
    parse_gpus,
    parse_host,
    resolve_hosts,
)
from azgo_tools.deploy.project import Record, compose_project, plan_workers, records, worker_config, write_compose
from azgo_tools.deploy.ssh import Result, SshSetup, explain_ssh_failure


# --- hosts ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, user, host, port", [
    ("gpu1", None, "gpu1", None),
    ("me@gpu1.example.org", "me", "gpu1.example.org", None),
    ("root@172.17.0.2:2222", "root", "172.17.0.2", 2222),
    ("me@[fe80::1]:22", "me", "fe80::1", 22),
    ("fe80::1", None, "fe80::1", None),
])
def test_parse_host(text, user, host, port):
    h = parse_host(text)
    assert (h.user, h.host, h.port) == (user, host, port)


@pytest.mark.parametrize("text, fragment", [
    ("-oProxyCommand=sh", "not a host name"),  # never an ssh option
    ("me@gpu1:99999", "port"),
    ("me@gpu1:ssh", "port"),
    ("bad user@gpu1", "not a user name"),
    ("me@", "not a host name"),
])
def test_parse_host_refuses(text, fragment):
    with pytest.raises(HostSpecError, match=fragment):
        parse_host(text)


def test_broker_address():
    assert check_address(" 10.0.0.5 ") == "10.0.0.5" and check_address("[fe80::1]") == "fe80::1"
    assert check_address(None) is None
    with pytest.raises(HostSpecError, match="BROKER"):
        check_address("10.0.0.5'; rm -rf ~; '")


def test_host_names():
    h = parse_host("root@172.17.0.2:2222")
    assert (h.name, h.context, h.project) == ("172.17.0.2-p2222", "azgo-172.17.0.2-p2222", "azgo-selfplay-172-17-0-2-p2222")
    assert h.ssh_url == "ssh://root@172.17.0.2:2222" and h.spec == "root@172.17.0.2:2222"
    assert parse_host("me@[fe80::1]").ssh_url == "ssh://me@[fe80::1]"
    assert parse_host("GPU1.lab").project == "azgo-selfplay-gpu1-lab"
    assert (h.worker_id(None), h.worker_id(3)) == ("172.17.0.2-p2222-cpu", "172.17.0.2-p2222-gpu3")


@pytest.mark.parametrize("text, expected", [
    (None, GpuRequest("auto")), ("", GpuRequest("auto")), ("all", GpuRequest("all")), ("NONE", GpuRequest("none")),
    ("cpu", GpuRequest("none")), ("0,1", GpuRequest("list", (0, 1))), ("3", GpuRequest("list", (3,))),
])
def test_parse_gpus(text, expected):
    assert parse_gpus(text) == expected


@pytest.mark.parametrize("text", ["0,0", "-1", "a,b", "1;2"])
def test_parse_gpus_refuses(text):
    with pytest.raises(HostSpecError, match="GPUS"):
        parse_gpus(text)


def _settings(tmp_path: Path, workers: list[dict] | None = None, **sections):
    data = {"distributed": {"workers": workers or []}, **sections}
    path = tmp_path / "azgo.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_settings(path)


def test_resolve_hosts_from_config_and_command_line(tmp_path):
    settings = _settings(tmp_path, [{"host": "gpu1", "user": "me", "key_path": "~/.ssh/gpu", "gpu_id": 1},
                                    {"host": "gpu2", "user": "me"}])
    from_config = resolve_hosts(None, settings)
    assert [(h.target, h.key_path, h.gpus) for h in from_config] == [
        ("me@gpu1", "~/.ssh/gpu", GpuRequest("list", (1,))), ("me@gpu2", None, GpuRequest("auto"))]
    # a listed host named on the command line keeps its key; GPUS and the spec's user win
    (h,) = resolve_hosts("root@gpu1:2200", settings, gpus="all")
    assert (h.target, h.port, h.key_path, h.gpus) == ("root@gpu1", 2200, "~/.ssh/gpu", GpuRequest("all"))
    (other,) = resolve_hosts("x@gpu9", settings, key_path="/k")
    assert (other.target, other.key_path, other.gpus) == ("x@gpu9", "/k", GpuRequest("auto"))
    with pytest.raises(HostSpecError, match="named twice"):
        resolve_hosts("a@gpu1,b@gpu1", settings)
    with pytest.raises(HostSpecError, match="no hosts"):
        resolve_hosts(None, _settings(tmp_path))


# --- the compose project ------------------------------------------------------------------------
def test_compose_project_one_service_per_gpu(tmp_path):
    settings = _settings(tmp_path, [{"host": "gpu1"}], board={"size": 7}, self_play={"parallel_games": 64})
    host = parse_host("me@gpu1")
    workers = plan_workers(host, [0, 2])
    project = compose_project(host, workers, image="azgo/selfplay-gpu:dev", settings=settings, broker="10.0.0.5")
    assert project["name"] == "azgo-selfplay-gpu1"
    assert list(project["services"]) == ["gpu0", "gpu2"]
    for w in workers:
        svc = project["services"][w.service]
        assert svc["environment"] == {"AZGO_WORKER_ID": w.worker_id, "AZGO_DISTRIBUTED__BROKER_HOST": "10.0.0.5",
                                      "AZGO_SECURITY__CURVE": "true", "AZGO_SECURITY__KEYS_DIR": "/run/secrets",
                                      "AZGO_SELF_PLAY__DEVICE": "cuda", "AZGO_SELF_PLAY__PARALLEL_GAMES": "64",
                                      "AZGO_SELF_PLAY__BATCH_SIZE": "32"}
        (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
        assert device == {"driver": "nvidia", "device_ids": [str(w.gpu)], "capabilities": ["gpu"]}  # its own GPU only
        assert svc["network_mode"] == "host" and svc["restart"] == "unless-stopped" and svc["init"] is True
        assert {s["target"] for s in svc["secrets"]} == {"broker.key", "selfplay.key_secret"}
        assert not any(":" in v and v.startswith(("/", ".")) for v in svc["volumes"])  # no bind mounts from here
        assert project["secrets"][f"{w.service}_key"] == {"environment": w.key_env}
    assert [w.worker_id for w in workers] == ["gpu1-gpu0", "gpu1-gpu2"]
    cpu = compose_project(host, plan_workers(host, None), image="azgo/selfplay:dev", settings=settings, broker="b")
    assert list(cpu["services"]) == ["cpu"] and "deploy" not in cpu["services"]["cpu"]
    assert cpu["services"]["cpu"]["environment"]["AZGO_SELF_PLAY__DEVICE"] == "cpu"


def test_a_hosts_weight_scales_its_workers_games_at_once(tmp_path):
    """The seed's "worker2: 2.0  # 2x faster machine": its workers play twice the games at once, twice the batch."""
    settings = _settings(tmp_path, distributed={"workers": [{"host": "gpu1", "weight": 0.5}, {"host": "gpu2"}],
                                      "worker_weights": {"gpu3": 2.0}},
                         self_play={"parallel_games": 64, "batch_size": 32})
    hosts = resolve_hosts("gpu1,gpu2,gpu3", settings)
    assert [h.weight for h in hosts] == [0.5, 1.0, 2.0]

    def env(host):
        project = compose_project(host, plan_workers(host, [0, 1]), image="i", settings=settings, broker="b")
        envs = [svc["environment"] for svc in project["services"].values()]
        assert len(envs) == 2 and envs[0]["AZGO_SELF_PLAY__PARALLEL_GAMES"] == envs[1]["AZGO_SELF_PLAY__PARALLEL_GAMES"]
        return int(envs[0]["AZGO_SELF_PLAY__PARALLEL_GAMES"]), int(envs[0]["AZGO_SELF_PLAY__BATCH_SIZE"])
    assert [env(h) for h in hosts] == [(32, 16), (64, 32), (128, 64)]
    # the worker reads them over the shipped config: the environment wins
    even = _settings(tmp_path, distributed={"load_balancing": "even", "worker_weights": {"gpu3": 2.0}})
    assert [h.weight for h in resolve_hosts("gpu1,gpu3", even)] == [1.0, 1.0]


def test_worker_config_is_the_broker_settings_pointed_at_it(tmp_path):
    settings = _settings(tmp_path, [{"host": "gpu1", "key_path": "/secret/key"}], board={"size": 7},
                         search={"visits": 64, "cheap_visits": 16})
    data = yaml.safe_load(worker_config(settings, "10.0.0.5"))
    assert data["board"]["size"] == 7 and data["search"]["visits"] == 64
    assert data["distributed"]["broker_host"] == "10.0.0.5" and "workers" not in data["distributed"]
    assert data["self_play"]["data_dir"] == "/data/selfplay"
    assert "komi" not in data["board"]  # defaults are left to the image's code
    path = tmp_path / "worker.yaml"
    path.write_text(worker_config(settings, "10.0.0.5"))
    assert load_settings(path).board.size == 7  # the file the workers read is a valid configuration


def test_compose_file_round_trip_and_digest(tmp_path):
    settings = _settings(tmp_path, run={"progress_interval": 3.0})
    host = parse_host("root@h1")
    workers = plan_workers(host, None)
    project = compose_project(host, workers, image="i", settings=settings, broker="b", secrets_digest="k1")
    path = write_compose(tmp_path / "h1" / "compose.yaml", host, project)
    text = path.read_text()
    assert "content: |" in text  # the configuration reads as YAML inside the file
    loaded = yaml.safe_load(text)
    assert loaded == project
    label = "org.azgo.config-digest"
    digest = project["services"]["cpu"]["labels"][label]
    again = compose_project(host, workers, image="i", settings=settings, broker="b", secrets_digest="k1")
    assert again["services"]["cpu"]["labels"][label] == digest  # unchanged: compose leaves the worker running
    moved = compose_project(host, workers, image="i", settings=settings, broker="b2", secrets_digest="k1")
    rekeyed = compose_project(host, workers, image="i", settings=settings, broker="b", secrets_digest="k2")
    assert digest not in (moved["services"]["cpu"]["labels"][label], rekeyed["services"]["cpu"]["labels"][label])


def test_compose_escapes_dollars(tmp_path):
    settings = _settings(tmp_path, evaluation={"gnugo": "/opt/$HOME/gnugo"})
    project = compose_project(parse_host("h"), plan_workers(parse_host("h"), None), image="i", settings=settings, broker="b")
    assert "/opt/$$HOME/gnugo" in project["configs"]["azgo"]["content"]  # compose turns $$ back into $


def test_records(tmp_path):
    Record("root@h1", "/k", "azgo-h1", "azgo-selfplay-h1", "i", "b", [{"worker_id": "h1-cpu", "service": "cpu", "gpu": None}]
           ).save(tmp_path / "h1")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "deploy.json").write_text("{not json")
    recs = records(tmp_path)
    assert list(recs) == ["h1"] and recs["h1"].key_path == "/k"
    (host, rec, services), = manage.select(recs, "h1-cpu")
    assert (host.target, host.key_path, services) == ("root@h1", "/k", ["cpu"])
    assert manage.select(recs, "root@h1")[0][2] == ["cpu"]
    assert "deployed workers: h1-cpu" in manage.select(recs, "h2-gpu0")
    assert "nothing deployed" in manage.select({}, None)


# --- ssh ----------------------------------------------------------------------------------------
def test_ssh_setup_applies_its_configuration(tmp_path):
    setup = SshSetup(tmp_path / "state")
    key = tmp_path / "id"
    host = Host("gpu1.invalid", user="me", port=2200, key_path=str(key))
    setup.write([host])
    wrapper = setup.bin / "ssh"
    assert wrapper.stat().st_mode & 0o111
    # `ssh -G` prints the configuration ssh would use, without connecting: through the wrapper, ours
    out = subprocess.run(["ssh", "-G", "gpu1.invalid"], env=setup.env(), capture_output=True, text=True, timeout=10).stdout
    options = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out.splitlines() if " " in line}
    assert options["user"] == "me" and options["port"] == "2200" and options["batchmode"] == "yes"
    assert str(key) in out and options["identitiesonly"] == "yes"
    assert str(setup.known_hosts) in options["userknownhostsfile"]
    assert setup.resolved(host) == ("gpu1.invalid", 2200)
    assert not setup.host_key_known(host)


@pytest.mark.parametrize("err, detail", [
    ("Permission denied (publickey).", "key refused"),
    ("ssh: Could not resolve hostname gpu9: Name or service not known", "does not resolve"),
    ("ssh: connect to host 10.0.0.9 port 22: Connection refused", "nothing listens"),
    ("ssh: connect to host 10.0.0.9 port 22: Connection timed out", "unreachable"),
    ("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed.", "changed"),
])
def test_ssh_failures_explained(err, detail):
    what, fix = explain_ssh_failure(parse_host("me@gpu9"), Result(255, "", err))
    assert detail in what and fix


# --- GPU checks (no GPU here: nvidia-smi's output is given) ----------------------------------------
class FakeSsh:
    def __init__(self, out: str):
        self.out = out

    def ssh(self, host, command, timeout=30, input=None):
        return Result(0, self.out, "")


SMI = "GPU 0: NVIDIA H100 (UUID: GPU-a)\nGPU 1: NVIDIA H100 (UUID: GPU-b)\nrc=0\n"
HOOK = "/usr/bin/nvidia-container-runtime-hook\n"


@pytest.mark.parametrize("gpus, out, status, used, fragment", [
    ("", SMI + HOOK, "ok", [0, 1], "one worker each"),
    ("all", SMI + HOOK, "ok", [0, 1], "GPU 0,1 of 2"),
    ("1", SMI + HOOK, "ok", [1], "GPU 1 of 2"),
    ("2", SMI + HOOK, "fail", None, "GPU 2 not on the host"),
    ("all", SMI, "fail", None, "no NVIDIA container toolkit"),
    ("all", "bash: nvidia-smi: command not found\nrc=127\n", "fail", None, "no GPU found"),
    ("", "bash: nvidia-smi: command not found\nrc=127\n", "ok", None, "one CPU worker"),
    ("none", SMI + HOOK, "ok", None, "not asked"),
])
def test_gpu_check(gpus, out, status, used, fragment):
    facts = checks.HostFacts(parse_host("me@gpu1", gpus=parse_gpus(gpus)))
    checks._gpu(facts, FakeSsh(out))
    (row,) = facts.checks
    assert (row.status, facts.gpus) == (status, used) and fragment in row.detail
    assert row.fix if status == "fail" else not row.fix


def test_commands_registered():
    parser = build_parser()
    args = parser.parse_args(["deploy", "--hosts", "me@gpu1", "--gpus", "0,1", "--broker", "10.0.0.5", "--wait", "30"])
    assert (args.hosts, args.gpus, args.broker, args.wait) == ("me@gpu1", "0,1", "10.0.0.5", 30)
    assert parser.parse_args(["restart", "gpu1-gpu0"]).worker == "gpu1-gpu0"
    assert parser.parse_args(["logs"]).worker is None
    assert parser.parse_args(["undeploy", "--volumes"]).volumes
