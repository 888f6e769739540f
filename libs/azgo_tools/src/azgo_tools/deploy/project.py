"""The compose project azgo runs on one host, and the record of it kept here.

``<state>/<name>/compose.yaml`` (project ``azgo-selfplay-<name>``) has one service per worker:
``gpu0``, ``gpu1``, ... (each reserving its own GPU, so replicas never share one unasked) or
``cpu``. Compose resolves files and bind mounts on *this* machine, not the host
(docker/compose#8484), so nothing is mounted from here; what a worker needs travels in the
compose file itself or is copied into its container by compose at creation:

    configs.azgo        the resolved configuration of this machine (inline content), at
                        /app/configs/azgo.yaml: the workers play exactly the broker's settings
    secrets.broker_key  the broker's public key, at /run/secrets/broker.key
    secrets.<service>_key   the worker's own secret key (keys/workers/<worker>.key_secret, made
                        when missing), at /run/secrets/selfplay.key_secret; read from an
                        environment variable of the compose command, so no file here holds it
    environment         AZGO_WORKER_ID, AZGO_DISTRIBUTED__BROKER_HOST, AZGO_SELF_PLAY__DEVICE,
                        AZGO_SECURITY__CURVE=true and AZGO_SECURITY__KEYS_DIR=/run/secrets, and
                        AZGO_SELF_PLAY__PARALLEL_GAMES / __BATCH_SIZE scaled by the host's weight
    volumes.<service>-outbox  /data/selfplay: unacknowledged batches survive a redeploy

Workers use the host's network (``network_mode: host``): they only connect out, to the broker.
``<state>/<name>/deploy.json`` records the host spec and its workers, for restart and logs.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from azgo_core.config import Settings

from .hosts import Host

CONFIG_PATH = "/app/configs/azgo.yaml"  # $AZGO_CONFIG of the images
SELFPLAY_DATA = "/data/selfplay"


@dataclass
class Worker:
    """One service of a host's project: its worker id, compose service name and GPU (None: CPU)."""

    worker_id: str
    service: str
    gpu: int | None

    @property
    def key_env(self) -> str:
        """The compose command's environment variable that carries this worker's secret key."""
        return f"AZGO_DEPLOY_KEY_{self.service.upper()}"


def plan_workers(host: Host, gpus: list[int] | None) -> list[Worker]:
    """One worker per GPU index in ``gpus``, or one CPU worker when ``gpus`` is None or empty."""
    if not gpus:
        return [Worker(host.worker_id(None), "cpu", None)]
    return [Worker(host.worker_id(g), f"gpu{g}", g) for g in gpus]


def worker_config(settings: Settings, broker: str) -> str:
    """The configuration YAML the host's workers read: this machine's, pointed at ``broker``.

    Only the values that differ from the defaults are written, so an image built from a
    slightly older azgo (which may not know a setting added since, at its default) still reads it.
    """
    data = json.loads(settings.model_dump_json(exclude_defaults=True))
    data.setdefault("distributed", {}).pop("workers", None)  # SSH details of the hosts mean nothing there
    data["distributed"]["broker_host"] = broker
    data.setdefault("self_play", {})["data_dir"] = SELFPLAY_DATA
    header = "# azgo's configuration for the self-play workers of this host (non-default values), written by azgo deploy\n"
    return header + yaml.safe_dump(data, sort_keys=False)


class _Literal(str):
    """A string YAML writes as a literal block (|), as the file it holds would read."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|"))


def compose_project(host: Host, workers: list[Worker], *, image: str, settings: Settings, broker: str,
                    secrets_digest: str = "") -> dict:
    """The compose file (as data) of ``host``'s workers; see the module docstring.

    ``secrets_digest``: a digest of the keys the workers get and the image id. Compose recreates
    a container when its service changes, but not when an inline config or a secret's content
    does, so their digest is a label of every service: a new configuration, key or image
    restarts the workers, and nothing else does.
    """
    services, volumes, secrets = {}, {}, {"broker_key": {"environment": "AZGO_DEPLOY_BROKER_KEY"}}
    # compose interpolates ${...} everywhere, inline content included: a literal $ is written $$
    content = _Literal(worker_config(settings, broker).replace("$", "$$"))
    digest = hashlib.sha256((content + secrets_digest).encode()).hexdigest()[:16]
    parallel_games, batch_size = settings.weighted_self_play(host.weight)
    for w in workers:
        # a remote worker always speaks CURVE: its key is in the broker's allow-list
        env = {"AZGO_WORKER_ID": w.worker_id, "AZGO_DISTRIBUTED__BROKER_HOST": broker,
               "AZGO_SECURITY__CURVE": "true", "AZGO_SECURITY__KEYS_DIR": "/run/secrets",
               "AZGO_SELF_PLAY__DEVICE": "cpu" if w.gpu is None else "cuda",
               "AZGO_SELF_PLAY__PARALLEL_GAMES": str(parallel_games), "AZGO_SELF_PLAY__BATCH_SIZE": str(batch_size)}
        service = {
            "image": image,
            "restart": "unless-stopped",
            "network_mode": "host",
            # tini as PID 1: a SIGTERM before Python installs its handler still stops the worker
            # (PID 1 ignores signals it has no handler for: compose down would wait out the grace period)
            "init": True,
            "stop_grace_period": "30s",  # the worker delivers its finished games before it exits
            "environment": env,
            "labels": {"org.azgo.worker": w.worker_id, "org.azgo.host": host.spec, "org.azgo.config-digest": digest},
            "configs": [{"source": "azgo", "target": CONFIG_PATH}],
            "secrets": [{"source": "broker_key", "target": "broker.key"},
                        {"source": f"{w.service}_key", "target": "selfplay.key_secret"}],
            "volumes": [f"{w.service}-outbox:{SELFPLAY_DATA}"],
            "logging": {"options": {"max-size": "10m", "max-file": "3"}},
        }
        if w.gpu is not None:
            service["deploy"] = {"resources": {"reservations": {"devices": [
                {"driver": "nvidia", "device_ids": [str(w.gpu)], "capabilities": ["gpu"]}]}}}
        services[w.service] = service
        volumes[f"{w.service}-outbox"] = {}
        secrets[f"{w.service}_key"] = {"environment": w.key_env}
    return {"name": host.project, "services": services, "volumes": volumes, "secrets": secrets,
            "configs": {"azgo": {"content": content}}}


def write_compose(path: Path, host: Host, project: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    head = (f"# Self-play on {host.spec}: written by `azgo deploy` (make deploy); rerun it rather than edit this.\n"
            f"#   docker --context {host.context} compose -p {host.project} ps\n")
    path.write_text(head + yaml.dump(project, Dumper=_Dumper, sort_keys=False, width=120))
    return path


@dataclass
class Record:
    """``deploy.json``: what was deployed on a host, so restart/logs/undeploy find it."""

    spec: str
    key_path: str | None
    context: str
    project: str
    image: str
    broker: str
    workers: list[dict] = field(default_factory=list)
    deployed_at: float = field(default_factory=time.time)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "deploy.json").write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> Record | None:
        try:
            return cls(**json.loads((folder / "deploy.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None


def records(state_dir: Path) -> dict[str, Record]:
    """Every host's record under ``state_dir``, by host name."""
    found = {}
    for folder in sorted(Path(state_dir).glob("*/")):
        rec = Record.load(folder)
        if rec is not None:
            found[folder.name] = rec
    return found
