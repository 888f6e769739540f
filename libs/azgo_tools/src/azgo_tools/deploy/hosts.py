"""Which hosts, which GPUs, and the names derived from them.

A host spec is ``[user@]host[:port]`` (``me@gpu1``, ``root@172.17.0.2:2222``, ``me@[fe80::1]:22``),
from ``HOSTS=`` or from ``distributed.workers`` of the configuration (host, user, key_path,
gpu_id). A host named on the command line that the configuration also lists takes the
configuration's user, key and GPU unless the command line says otherwise.

Names of one host (``Host``), all derived from its address and port so that a later command
finds what an earlier one made without any local record:

    name      172.17.0.2, gpu1.example.org, gpu1-p2222     files: build/deploy/<name>/
    context   azgo-<name>                                  docker context (ssh://user@host:port)
    project   azgo-selfplay-<name, lower case, '.' -> '-'> compose project on the host

Weight: ``Settings.host_weight`` (``distributed.worker_weights``, else the host's
``workers[].weight``, else 1; 1 everywhere under ``load_balancing: even``). A host of weight 2
(a machine twice as fast) runs each of its workers with twice ``self_play.parallel_games`` and
twice the network batch.

GPU request (``GPUS=``): ``all`` (every GPU of the host; none is an error), ``0,1`` (those),
``none`` / ``cpu`` (one CPU worker), empty (``auto``: every GPU when the host has some, else one
CPU worker). Each GPU gets its own service and worker ``<name>-gpu<N>``; a CPU host runs
``<name>-cpu``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from azgo_core.config import Settings

HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")  # a name or an IPv4 address; never an ssh option
IPV6_RE = re.compile(r"^[0-9A-Fa-f:.]+$")
USER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
AUTO, ALL, NONE = "auto", "all", "none"


class HostSpecError(ValueError):
    """A host or GPU specification that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class GpuRequest:
    """``mode`` auto | all | none | list; ``ids`` the GPU indexes of a list."""

    mode: str = AUTO
    ids: tuple[int, ...] = ()

    def __str__(self) -> str:
        return ",".join(map(str, self.ids)) if self.mode == "list" else self.mode


def parse_gpus(text: str | None) -> GpuRequest:
    """``GPUS=`` as a request: '' -> auto, 'all', 'none'/'cpu', '0,1' -> those indexes."""
    text = (text or "").strip().lower()
    if text in ("", AUTO):
        return GpuRequest(AUTO)
    if text == ALL:
        return GpuRequest(ALL)
    if text in (NONE, "cpu"):
        return GpuRequest(NONE)
    try:
        ids = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise HostSpecError(f"GPUS={text!r}: expected all, none, or GPU indexes such as 0,1") from None
    if any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise HostSpecError(f"GPUS={text!r}: indexes must be distinct and >= 0")
    return GpuRequest("list", ids)


@dataclass(frozen=True)
class Host:
    """One remote self-play host and what was asked of it."""

    host: str
    user: str | None = None
    port: int | None = None
    key_path: str | None = None
    gpus: GpuRequest = GpuRequest()
    weight: float = 1.0
    """Self-play load factor (``Settings.host_weight``): its workers play weight x parallel_games at once."""

    @property
    def target(self) -> str:
        """What ssh connects to: user@host (IPv6 without brackets: ssh takes the port separately)."""
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def spec(self) -> str:
        """The host as a user would write it: user@host[:port]."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (f"{self.user}@" if self.user else "") + host + (f":{self.port}" if self.port else "")

    @property
    def ssh_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return "ssh://" + (f"{self.user}@" if self.user else "") + host + (f":{self.port}" if self.port else "")

    @property
    def name(self) -> str:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.host).strip("-")
        return f"{base}-p{self.port}" if self.port and self.port != 22 else base

    @property
    def context(self) -> str:
        return f"azgo-{self.name}"

    @property
    def project(self) -> str:
        return "azgo-selfplay-" + re.sub(r"[^a-z0-9_-]+", "-", self.name.lower())

    def worker_id(self, gpu: int | None) -> str:
        return f"{self.name}-cpu" if gpu is None else f"{self.name}-gpu{gpu}"


def parse_host(text: str, gpus: GpuRequest = GpuRequest(), key_path: str | None = None) -> Host:
    """``[user@]host[:port]`` as a Host; raises HostSpecError naming the bad part."""
    raw = text.strip()
    user, _, rest = raw.rpartition("@")
    port = None
    if rest.startswith("["):  # [ipv6]:port
        host, _, tail = rest[1:].partition("]")
        if tail:
            if not tail.startswith(":"):
                raise HostSpecError(f"host {raw!r}: expected [address]:port")
            port = tail[1:]
    elif rest.count(":") == 1:
        host, port = rest.split(":")
    else:
        host = rest
    if not (HOST_RE.match(host) or (":" in host and IPV6_RE.match(host))):
        raise HostSpecError(f"host {raw!r}: {host!r} is not a host name or address")
    if user and not USER_RE.match(user):
        raise HostSpecError(f"host {raw!r}: {user!r} is not a user name")
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise HostSpecError(f"host {raw!r}: port {port!r} must be a number from 1 to 65535")
        port = int(port)
    return Host(host=host, user=user or None, port=port, key_path=key_path, gpus=gpus)


def check_address(text: str | None) -> str | None:
    """``BROKER=``: a host name or an address (it ends up in the workers' config and in a shell probe)."""
    if text is None:
        return None
    text = text.strip().strip("[]")
    if not (HOST_RE.match(text) or (":" in text and IPV6_RE.match(text))):
        raise HostSpecError(f"BROKER={text!r} is not a host name or address")
    return text


def config_hosts(settings: Settings) -> list[Host]:
    """The hosts of ``distributed.workers``: gpu_id N asks for GPU N, null for auto (every GPU there is)."""
    hosts = []
    for w in settings.distributed.workers:
        host = parse_host(w.host, key_path=w.key_path)
        gpus = GpuRequest("list", (w.gpu_id,)) if w.gpu_id is not None else GpuRequest(AUTO)
        hosts.append(replace(host, user=w.user or host.user, gpus=gpus))
    return hosts


def resolve_hosts(hosts: str | None, settings: Settings, gpus: str | None = None, key_path: str | None = None) -> list[Host]:
    """The hosts to act on: ``hosts`` (comma-separated specs) or else the configuration's.

    Command-line values (GPUS, the SSH key, a user or port in the spec) win over the
    configuration's entry for the same host. Raises HostSpecError when there are none.
    """
    request = parse_gpus(gpus) if gpus else None
    known = {h.host: h for h in config_hosts(settings)}
    if hosts and hosts.strip():
        chosen = []
        for text in (t for t in hosts.split(",") if t.strip()):
            h = parse_host(text)
            base = known.get(h.host, Host(h.host))
            chosen.append(replace(base, user=h.user or base.user, port=h.port or base.port))
    else:
        chosen = list(known.values())
    if not chosen:
        raise HostSpecError("no hosts: pass HOSTS=user@host,... (azgo deploy --hosts) or list them in distributed.workers")
    chosen = [replace(h, gpus=request or h.gpus, key_path=key_path or h.key_path, weight=settings.host_weight(h.host))
              for h in chosen]
    names = [h.name for h in chosen]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise HostSpecError(f"host named twice: {', '.join(dup)}")
    return chosen
