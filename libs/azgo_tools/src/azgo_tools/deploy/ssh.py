"""SSH to the hosts: one client configuration for azgo's commands and the docker contexts, host keys, errors.

Docker's SSH contexts run the system ``ssh``, which reads ``~/.ssh/config``. azgo adds what its
hosts need without touching that file: it writes ``<state>/ssh/config`` and an ``ssh`` wrapper
in ``<state>/ssh/bin`` that runs ``ssh -F <state>/ssh/config``, and puts that folder first on
the PATH of every ``ssh`` and ``docker`` command it runs (``SshSetup.env``). The file holds,
in the order ssh applies (first value wins):

    Host <host>        Port, User, IdentityFile + IdentitiesOnly (from key_path / SSH_KEY)
    Host *             BatchMode yes (never a password prompt), ConnectTimeout, keep-alives,
                       known hosts: ~/.ssh/known_hosts, then <state>/ssh/known_hosts
                       Include ~/.ssh/config (aliases, proxies, agents: yours still apply)
    Include /etc/ssh/ssh_config

Host keys: a host whose key no known-hosts file holds is scanned (``ssh-keyscan``) into
``<state>/ssh/known_hosts`` and its fingerprints are printed, so the user can compare them; a
host whose key *changed* is never rescanned: that is reported with its fix (``ssh-keygen -R``).
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .hosts import Host, HostSpecError

CONNECT_TIMEOUT = 10  # seconds for the TCP connection and the key exchange


@dataclass(frozen=True)
class Result:
    """A finished command: exit status and its output (stdout, stderr as text)."""

    rc: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def last_line(self) -> str:
        lines = [line.strip() for line in (self.err or self.out).strip().splitlines() if line.strip()]
        return lines[-1] if lines else f"exit status {self.rc}"


def run(argv: list[str], env: dict[str, str], timeout: float, input: bytes | None = None) -> Result:
    """Run ``argv``; a timeout or a missing program is a Result with rc 124 / 127, never an exception."""
    try:
        p = subprocess.run(argv, env=env, input=input, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Result(124, "", f"{argv[0]}: no answer within {timeout:g} s")
    except FileNotFoundError:
        return Result(127, "", f"{argv[0]}: command not found")
    return Result(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))


class SshSetup:
    """The ssh configuration, wrapper and known-hosts file under ``<state_dir>/ssh``."""

    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir).resolve() / "ssh"
        self.config = self.dir / "config"
        self.known_hosts = self.dir / "known_hosts"
        self.bin = self.dir / "bin"

    def write(self, hosts: list[Host]) -> None:
        """(Re)write the config for ``hosts`` and the wrapper; the known-hosts file is kept."""
        self.bin.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        self.known_hosts.touch(mode=0o600, exist_ok=True)
        self.config.write_text(self._config_text(hosts))
        self.config.chmod(0o600)
        wrapper = self.bin / "ssh"
        real = _real_ssh(self.bin)
        wrapper.write_text(f'#!/bin/sh\n# azgo deploy: ssh with azgo\'s configuration (see {self.config})\n'
                           f'exec {shlex.quote(real)} -F {shlex.quote(str(self.config))} "$@"\n')
        wrapper.chmod(0o755)

    def _config_text(self, hosts: list[Host]) -> str:
        lines = ["# written by azgo deploy; rewritten on every run", ""]
        for h in hosts:
            lines.append(f"Host {h.host}")
            if h.port:
                lines.append(f"    Port {h.port}")
            if h.user:
                lines.append(f"    User {h.user}")
            if h.key_path:
                if any(c in h.key_path for c in "\n\r\""):
                    raise HostSpecError(f"{h.spec}: key path {h.key_path!r} has a newline or a quote")
                lines += [f"    IdentityFile {_quote(str(Path(h.key_path).expanduser()))}", "    IdentitiesOnly yes"]
            lines.append("")
        lines += [
            "Host *",
            "    BatchMode yes",
            f"    ConnectTimeout {CONNECT_TIMEOUT}",
            "    ServerAliveInterval 15",
            "    ServerAliveCountMax 4",
            "    StrictHostKeyChecking yes",
            f"    UserKnownHostsFile ~/.ssh/known_hosts {_quote(str(self.known_hosts))}",
            "    Include ~/.ssh/config",
            "",
            "Include /etc/ssh/ssh_config",
            "",
        ]
        return "\n".join(lines)

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment for ssh and docker: the wrapper first on PATH."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        return env

    def ssh(self, host: Host, command: str, timeout: float = 30, input: bytes | None = None) -> Result:
        """Run ``command`` (a shell line) on ``host``."""
        return run(["ssh", "--", host.target, command], self.env(), timeout, input)

    def resolved(self, host: Host) -> tuple[str, int]:
        """(host name, port) ssh will really connect to, after aliases (``ssh -G``)."""
        r = run(["ssh", "-G", "--", host.target], self.env(), 10)
        fields = dict(line.split(" ", 1) for line in r.out.splitlines() if " " in line)
        return fields.get("hostname", host.host), int(fields.get("port", host.port or 22))

    def host_key_known(self, host: Host) -> bool:
        name, port = self.resolved(host)
        key = name if port == 22 else f"[{name}]:{port}"
        files = [Path("~/.ssh/known_hosts").expanduser(), Path("/etc/ssh/ssh_known_hosts"), self.known_hosts]
        return any(f.exists() and run(["ssh-keygen", "-F", key, "-f", str(f)], self.env(), 10).ok for f in files)

    def scan_host_key(self, host: Host) -> str:
        """Add the host's keys to azgo's known-hosts file; returns their fingerprints (raises OSError when none)."""
        name, port = self.resolved(host)
        r = run(["ssh-keyscan", "-T", "5", "-p", str(port), "--", name], self.env(), 20)
        keys = [line for line in r.out.splitlines() if line and not line.startswith("#")]
        if not keys:
            raise OSError(f"ssh-keyscan got no host key from {name}:{port}: {r.last_line()}")
        with open(self.known_hosts, "a") as f:
            f.write("\n".join(keys) + "\n")
        prints = run(["ssh-keygen", "-l", "-f", "-"], self.env(), 10, input=("\n".join(keys) + "\n").encode()).out.split("\n")
        # "256 SHA256:... host (ED25519)": the ED25519 key's fingerprint when there is one
        shown = [line.split() for line in prints if "(ED25519)" in line] or [line.split() for line in prints if line]
        return " ".join(shown[0][i] for i in (1, 3) if i < len(shown[0])) if shown else "no fingerprint"

    def local_address_towards(self, host: Host) -> str:
        """This machine's address on the route to ``host``: where its workers find a broker here."""
        name, port = self.resolved(host)
        family, _, _, _, addr = socket.getaddrinfo(name, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect(addr)  # UDP: no packet is sent, the kernel only picks the route and source address
            return s.getsockname()[0]


def _quote(path: str) -> str:
    return f'"{path}"' if " " in path else path


def _real_ssh(wrapper_dir: Path) -> str:
    """The system ssh, skipping azgo's own wrapper folder on the PATH."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder) / "ssh"
        if folder and Path(folder).resolve() != wrapper_dir.resolve() and os.access(candidate, os.X_OK):
            return str(candidate)
    return "/usr/bin/ssh"


def explain_ssh_failure(host: Host, r: Result) -> tuple[str, str]:
    """(what went wrong, how to fix it) for a failed ``ssh host true``."""
    err = r.err
    target = host.target
    if "IDENTIFICATION HAS CHANGED" in err:
        return ("host key changed since it was first seen",
                f"if the host was reinstalled: ssh-keygen -R {host.host}, then rerun; otherwise investigate")
    if "Host key verification failed" in err or "host key is known" in err:
        return "host key unknown", f"ssh-keyscan {host.host} >> ~/.ssh/known_hosts (after checking it), or rerun"
    if "Permission denied" in err:
        return ("key refused (Permission denied)",
                f"ssh-copy-id {target}, or set key_path in distributed.workers / SSH_KEY=~/.ssh/id_ed25519")
    if "Could not resolve hostname" in err or "Name or service not known" in err:
        return "host name does not resolve", "check the spelling, DNS or /etc/hosts (or give its address)"
    if "Connection refused" in err:
        return "nothing listens on the SSH port", "install and start the SSH server there: apt-get install openssh-server"
    if "timed out" in err or "No route to host" in err or "Network is unreachable" in err or r.rc == 124:
        return "host unreachable (timed out)", "is it up and on this network? a firewall may drop port 22"
    return r.last_line(), "run ssh -v " + target + " true to see why"
