"""Host checks (``make doctor``, and the first step of ``make deploy``): what is wrong where, and the fix.

Each check is a row ``Check(host, name, status, detail, fix)`` with status ok, warn, fail or
skip (an earlier failure made it moot). Per host, in order:

    ssh       ``ssh host true`` in batch mode (an unknown host key is scanned in first, and said so)
    docker    the engine answers over SSH (``docker version``), and through the context azgo-<name>
    gpu       the GPUs asked for exist (``nvidia-smi -L``) and the NVIDIA container toolkit is there
    disk      free space where the engine keeps images, against the image still to ship
    image     the self-play image on the host: the same id as here (nothing to ship) or not
    broker    the broker's ROUTER and PUB ports accept a TCP connection from the host

and once for this machine (host ``local``): the docker client, Compose >= 2.24 (inline configs
and secrets from the environment, copied into containers: nothing is bind-mounted from here)
and the image to ship. ``HostFacts`` carries what deploy needs from them (the GPUs to use,
whether the host has the image).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text

from .engine import Docker
from .hosts import ALL, AUTO, NONE, Host
from .ssh import CONNECT_TIMEOUT, SshSetup, explain_ssh_failure

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
STYLE = {OK: "green", WARN: "yellow", FAIL: "bold red", SKIP: "dim"}
MIN_COMPOSE = (2, 24)
GIB = 1 << 30
DOCKER_INSTALL = "install Docker Engine: https://docs.docker.com/engine/install/ (Debian/Ubuntu: apt-get install docker.io)"
TOOLKIT_FIX = ("install the NVIDIA container toolkit, then: sudo nvidia-ctk runtime configure --runtime=docker && "
               "sudo systemctl restart docker (docs.nvidia.com/datacenter/cloud-native/container-toolkit)")


@dataclass
class Check:
    host: str
    name: str
    status: str
    detail: str
    fix: str = ""


@dataclass
class Wanted:
    """What the hosts should get: images (CPU and GPU self-play), the broker's address and ports."""

    image: str
    gpu_image: str
    broker: str | None  # None: this machine's address on the route to each host
    ports: tuple[int, int]  # ROUTER, PUB
    broker_required: bool = True  # doctor: an unreachable broker fails; deploy: a warning (workers retry)


@dataclass
class HostFacts:
    host: Host
    checks: list[Check] = field(default_factory=list)
    gpus: list[int] | None = None  # GPUs to use; None: a CPU worker
    broker: str = ""
    has_image: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    @property
    def image_key(self) -> str:
        return "gpu" if self.gpus else "cpu"

    def add(self, name: str, status: str, detail: str, fix: str = "") -> bool:
        self.checks.append(Check(self.host.spec, name, status, detail, fix))
        return status != FAIL


def local_checks(docker: Docker, images: list[str]) -> list[Check]:
    """The docker client, the compose plugin and the images to ship, on this machine."""
    rows = []
    r = docker.local("version", "--format", "{{.Client.Version}}", timeout=20)
    rows.append(Check("local", "docker", OK if r.ok else FAIL, f"client {r.out.strip()}" if r.ok else r.last_line(),
                      "" if r.ok else "install the docker client and start an engine here (deploy/ci-docker.sh does both)"))
    r = docker.local("compose", "version", "--short", timeout=20)
    version = tuple(int(x) for x in re.findall(r"\d+", r.out)[:2]) if r.ok else ()
    good = r.ok and version >= MIN_COMPOSE
    rows.append(Check("local", "compose", OK if good else FAIL, f"Docker Compose {r.out.strip()}" if r.ok else r.last_line(),
                      "" if good else "install Docker Compose >= 2.24 as a docker CLI plugin (docker compose version)"))
    for image in images:
        size = docker.image_size(image)
        found = docker.image_id(image) is not None
        rows.append(Check("local", "image", OK if found else FAIL, f"{image} ({size / GIB:.2f} GiB)" if found else
                          f"{image} not found here", "" if found else "build it: make images (docker compose build selfplay)"))
    return rows


def check_host(host: Host, ssh: SshSetup, docker: Docker, wanted: Wanted, local_ids: dict[str, str | None],
               local_sizes: dict[str, int]) -> HostFacts:
    """Run the host's checks in order; a failure skips the checks that depend on it."""
    facts = HostFacts(host)
    steps = (_ssh, _docker, _gpu, _image_and_disk, _broker)
    for i, step in enumerate(steps):
        if not step(facts, ssh, docker, wanted, local_ids, local_sizes):
            for later in steps[i + 1:]:
                facts.add(later.__name__.strip("_").replace("_and_", "/"), SKIP, "not checked (fix the failure above first)")
            break
    return facts


def _ssh(facts: HostFacts, ssh: SshSetup, *_) -> bool:
    host = facts.host
    r = ssh.ssh(host, "true", timeout=CONNECT_TIMEOUT + 10)
    unknown_key = "host key is known" in r.err or ("Host key verification failed" in r.err
                                                   and "IDENTIFICATION HAS CHANGED" not in r.err)
    if not r.ok and unknown_key and not ssh.host_key_known(host):
        try:
            prints = ssh.scan_host_key(host)
        except OSError as e:
            return facts.add("ssh", FAIL, str(e), "is sshd running there? is the port right?")
        facts.notes.append(f"{host.spec}: new host, its key {prints} added to {ssh.known_hosts} "
                           "(compare: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the host)")
        r = ssh.ssh(host, "true", timeout=CONNECT_TIMEOUT + 10)
    if r.ok:
        return facts.add("ssh", OK, f"{host.target} (batch mode, key login)")
    detail, fix = explain_ssh_failure(host, r)
    return facts.add("ssh", FAIL, detail, fix)


def _docker(facts: HostFacts, ssh: SshSetup, docker: Docker, *_) -> bool:
    host = facts.host
    r = ssh.ssh(host, "command -v docker >/dev/null 2>&1 || exit 127; docker version --format '{{.Server.Version}}'")
    if r.rc == 127:
        return facts.add("docker", FAIL, "Docker is not installed", DOCKER_INSTALL)
    if not r.ok:
        if "permission denied" in r.err.lower():
            user = host.user or "$USER"
            return facts.add("docker", FAIL, f"{user} may not use the engine (docker.sock: permission denied)",
                             f"sudo usermod -aG docker {user}, then log in again")
        if "Cannot connect to the Docker daemon" in r.err or "daemon running" in r.err:
            return facts.add("docker", FAIL, "the engine is not running", "sudo systemctl enable --now docker")
        return facts.add("docker", FAIL, r.last_line(), DOCKER_INSTALL)
    try:
        docker.ensure_context(host)
    except RuntimeError as e:
        return facts.add("docker", FAIL, str(e), "docker context ls; remove a broken one: docker context rm " + host.context)
    c = docker.remote(host, "version", "--format", "{{.Server.Version}}", timeout=60)
    if not c.ok:
        return facts.add("docker", FAIL, f"engine answers over ssh but not through context {host.context}: {c.last_line()}",
                         f"docker --context {host.context} version shows the error")
    return facts.add("docker", OK, f"engine {r.out.strip()}, context {host.context}")


def _gpu(facts: HostFacts, ssh: SshSetup, *_) -> bool:
    request = facts.host.gpus
    if request.mode == NONE:
        return facts.add("gpu", OK, "not asked (GPUS=none): one CPU worker")
    r = ssh.ssh(facts.host, "nvidia-smi -L 2>&1; echo rc=$?; command -v nvidia-container-runtime-hook nvidia-ctk || true")
    found = [int(i) for i in re.findall(r"^GPU (\d+):", r.out, re.M)]
    tail = r.out.rsplit("rc=", 1)[-1]  # after nvidia-smi's output: the toolkit's programs that exist
    toolkit = "nvidia-container-runtime-hook" in tail or "nvidia-ctk" in tail
    if not found:
        if request.mode == AUTO:
            return facts.add("gpu", OK, "no GPU found (nvidia-smi): one CPU worker")
        return facts.add("gpu", FAIL, f"no GPU found: {_first_line(r.out) or 'nvidia-smi missing'}",
                         "install the NVIDIA driver (nvidia-smi -L must list the GPUs), or GPUS=none for CPU self-play")
    wanted = found if request.mode in (AUTO, ALL) else list(request.ids)
    missing = [g for g in wanted if g not in found]
    if missing:
        return facts.add("gpu", FAIL, f"GPU {','.join(map(str, missing))} not on the host (it has {','.join(map(str, found))})",
                         f"GPUS={','.join(map(str, found))} or GPUS=all")
    if not toolkit:
        return facts.add("gpu", FAIL, f"{len(found)} GPU(s) but no NVIDIA container toolkit", TOOLKIT_FIX)
    facts.gpus = wanted
    return facts.add("gpu", OK, f"GPU {','.join(map(str, wanted))} of {len(found)}: one worker each")


def _image_and_disk(facts: HostFacts, ssh: SshSetup, docker: Docker, wanted: Wanted, local_ids, local_sizes) -> bool:
    image = wanted.gpu_image if facts.gpus else wanted.image
    remote_id = docker.image_id(image, facts.host)
    facts.has_image = remote_id is not None and remote_id == local_ids.get(image)
    size = local_sizes.get(image, 0)
    if facts.has_image:
        facts.add("image", OK, f"{image}: the same image id as here (nothing to ship)")
    else:
        facts.add("image", OK, f"{image}: {'another version' if remote_id else 'absent'}; deploy ships {size / GIB:.2f} GiB")
    r = ssh.ssh(facts.host, "df -Pk \"$(docker info --format '{{.DockerRootDir}}' 2>/dev/null || echo /var/lib/docker)\" "
                            "2>/dev/null | tail -n 1")
    fields = r.out.split()
    if not r.ok or len(fields) < 4 or not fields[3].isdigit():
        return facts.add("disk", WARN, f"free space unknown ({r.last_line()})")
    free = int(fields[3]) * 1024
    need = (0 if facts.has_image else size) + GIB
    if free < need:
        return facts.add("disk", FAIL, f"{free / GIB:.1f} GiB free on {fields[5] if len(fields) > 5 else '?'}, "
                                       f"needs {need / GIB:.1f} GiB", "docker --context " + facts.host.context
                         + " system prune (removes unused images), or free space there")
    return facts.add("disk", OK if free >= 2 * need else WARN, f"{free / GIB:.1f} GiB free for images")


def _broker(facts: HostFacts, ssh: SshSetup, docker: Docker, wanted: Wanted, *_) -> bool:
    try:
        facts.broker = wanted.broker or ssh.local_address_towards(facts.host)
    except OSError as e:
        return facts.add("broker", FAIL, f"no route to the host from here: {e}", "pass BROKER=address-the-host-can-reach")
    probes = " ; ".join(f"timeout 5 bash -c '</dev/tcp/{facts.broker}/{port}' 2>/dev/null && echo open{port}"
                        for port in wanted.ports)
    r = ssh.ssh(facts.host, f"command -v bash >/dev/null || {{ echo nobash; exit 0; }}; {probes}; true", timeout=30)
    if "nobash" in r.out:
        return facts.add("broker", WARN, f"{facts.broker}: not tested (no bash on the host)")
    closed = [str(p) for p in wanted.ports if f"open{p}" not in r.out]
    if not closed:
        return facts.add("broker", OK, f"{facts.broker}:{'/'.join(map(str, wanted.ports))} reachable from the host")
    status = FAIL if wanted.broker_required else WARN
    return facts.add("broker", status, f"{facts.broker} port {'/'.join(closed)} not reachable from the host"
                     + ("" if wanted.broker_required else " (workers will retry until it is)"),
                     f"run the broker with broker.bind 0.0.0.0 (AZGO_BROKER__BIND=0.0.0.0), open ports "
                     f"{'/'.join(map(str, wanted.ports))} to the host, or pass BROKER=an address the host reaches")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip() and not line.startswith("rc=")), "")


def table(rows: list[Check], title: str = "azgo doctor") -> Table:
    """The rows as a rich table: host, check, result, detail, fix."""
    t = Table(title=title, title_justify="left", show_lines=False)
    for col in ("host", "check", "result", "detail", "fix"):
        t.add_column(col, overflow="fold", no_wrap=col in ("check", "result"))
    last_host = None
    for c in rows:
        t.add_row(c.host if c.host != last_host else "", c.name, Text(c.status.upper() if c.status == FAIL else c.status,
                  style=STYLE[c.status]), c.detail, c.fix)
        last_host = c.host
    return t
