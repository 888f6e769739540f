"""Docker on this machine and on the hosts: contexts, commands through them, images shipped to them.

Every remote command is ``docker --context azgo-<name> ...`` (a context over SSH, made or
updated by ``ensure_context``) in the environment of ``SshSetup.env`` so that docker's ssh
is azgo's wrapper.

Images reach a host one of two ways:

- over SSH (default): ``docker save IMAGE``, gzip-compressed once into
  ``<state>/images/<image>-<id>.tar.gz`` (kept for the next deploy until the image changes),
  then streamed into ``docker --context H load`` for every host that lacks that image id (in
  parallel); hosts that already have it are skipped.
- through a registry (``REGISTRY=registry.example.org:5000``): tagged
  ``REGISTRY/IMAGE``, pushed once, pulled by each host.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .hosts import Host
from .ssh import Result, SshSetup, run

CHUNK = 1 << 20
LOAD_TIMEOUT = 1800  # seconds: an image of a few GB over a slow link


class DeployError(RuntimeError):
    """A step of deploy that failed; the message names the host and what to do."""


class Docker:
    """The docker command line, locally and through each host's context."""

    def __init__(self, ssh: SshSetup):
        self.ssh = ssh

    def local(self, *args: str, timeout: float = 60, input: bytes | None = None) -> Result:
        return run(["docker", *args], self.ssh.env(), timeout, input)

    def remote(self, host: Host, *args: str, timeout: float = 60, input: bytes | None = None) -> Result:
        return run(["docker", "--context", host.context, *args], self.ssh.env(), timeout, input)

    def remote_argv(self, host: Host, *args: str) -> list[str]:
        return ["docker", "--context", host.context, *args]

    # --- contexts --------------------------------------------------------------------------
    def ensure_context(self, host: Host) -> None:
        """``azgo-<name>`` pointing at ssh://user@host:port: created, or updated when it points elsewhere."""
        current = self.local("context", "inspect", host.context, "--format", "{{.Endpoints.docker.Host}}", timeout=20)
        if current.ok and current.out.strip() == host.ssh_url:
            return
        verb = "update" if current.ok else "create"
        r = self.local("context", verb, host.context, "--description", f"azgo self-play host {host.spec}",
                       "--docker", f"host={host.ssh_url}", timeout=20)
        if not r.ok:
            raise DeployError(f"{host.spec}: docker context {verb} {host.context} failed: {r.last_line()}")

    def remove_context(self, host: Host) -> None:
        self.local("context", "rm", "--force", host.context, timeout=20)

    def remove_volumes(self, host: Host) -> Result:
        """Delete the volumes of the host's project (the workers' outboxes)."""
        r = self.remote(host, "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={host.project}")
        names = r.out.split()
        return self.remote(host, "volume", "rm", *names) if r.ok and names else r

    # --- images ----------------------------------------------------------------------------
    def image_id(self, image: str, host: Host | None = None) -> str | None:
        args = ("image", "inspect", image, "--format", "{{.Id}}")
        r = self.remote(host, *args, timeout=60) if host else self.local(*args, timeout=30)
        return r.out.strip() if r.ok else None

    def image_size(self, image: str) -> int:
        r = self.local("image", "inspect", image, "--format", "{{.Size}}", timeout=30)
        return int(r.out.strip()) if r.ok and r.out.strip().isdigit() else 0

    def info(self, host: Host) -> dict | None:
        r = self.remote(host, "info", "--format", "{{json .}}", timeout=60)
        if not r.ok:
            return None
        try:
            return json.loads(r.out)
        except json.JSONDecodeError:
            return None


@dataclass
class ImageArchive:
    """A compressed ``docker save`` of one image id, made once per deploy for every host that needs it."""

    image: str
    image_id: str
    path: Path

    @classmethod
    def make(cls, docker: Docker, image: str, image_id: str, folder: Path,
             progress: Callable[[int], None] = lambda n: None) -> ImageArchive:
        """``docker save image | gzip -1`` into ``folder``; ``progress(bytes read)`` as it goes."""
        folder.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", image)
        path = folder / f"{slug}-{image_id.split(':')[-1][:12]}.tar.gz"
        for stale in folder.glob(f"{slug}-*.tar.gz"):  # archives of earlier builds of this image
            if stale != path:
                stale.unlink()
        if path.exists():  # made by an earlier deploy: a host added later gets it without compressing again
            return cls(image, image_id, path)
        tmp = path.with_suffix(".part")
        # gzip framing (wbits 16+15) at level 1: docker load reads gzip; higher levels cost far more CPU for a few %
        gz = zlib.compressobj(1, zlib.DEFLATED, 31)
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=docker.ssh.env())
        with open(tmp, "wb") as out:
            while chunk := save.stdout.read(CHUNK):
                out.write(gz.compress(chunk))
                progress(len(chunk))
            out.write(gz.flush())
        err = save.stderr.read().decode(errors="replace")
        if save.wait() != 0:
            tmp.unlink(missing_ok=True)
            raise DeployError(f"docker save {image} failed: {err.strip() or save.returncode}")
        tmp.replace(path)
        return cls(image, image_id, path)

    def send(self, docker: Docker, host: Host, progress: Callable[[int], None] = lambda n: None) -> float:
        """Stream the archive into ``docker --context H load``; returns the seconds it took."""
        start = time.monotonic()
        load = subprocess.Popen(docker.remote_argv(host, "load"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=docker.ssh.env())
        try:
            with open(self.path, "rb") as f:
                while chunk := f.read(CHUNK):
                    load.stdin.write(chunk)
                    progress(len(chunk))
        except BrokenPipeError:
            pass  # the load ended early: its status and stderr below say why
        try:
            out, err = load.communicate(timeout=LOAD_TIMEOUT)  # closes its stdin: the end of the archive
        except subprocess.TimeoutExpired:
            load.kill()
            out, err = load.communicate()
        if load.returncode != 0:
            raise DeployError(f"{host.spec}: docker load failed: {err.decode(errors='replace').strip()[-500:]}")
        return time.monotonic() - start


def push_to_registry(docker: Docker, image: str, registry: str) -> str:
    """Tag ``image`` as ``registry/image`` and push it; returns the registry name."""
    name = f"{registry.rstrip('/')}/{image}"
    for args in (("tag", image, name), ("push", name)):
        r = docker.local(*args, timeout=LOAD_TIMEOUT)
        if not r.ok:
            raise DeployError(f"docker {' '.join(args)} failed: {r.last_line()}")
    return name


def pull_on_host(docker: Docker, host: Host, name: str) -> None:
    r = docker.remote(host, "pull", name, timeout=LOAD_TIMEOUT)
    if not r.ok:
        raise DeployError(f"{host.spec}: docker pull {name} failed: {r.last_line()} "
                          "(is the registry reachable from the host, and the host logged in: docker login REGISTRY?)")
