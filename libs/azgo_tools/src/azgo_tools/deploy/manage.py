"""``azgo undeploy``, ``restart`` and ``logs``: deployed hosts, found by name.

Hosts for undeploy: ``--hosts``, else every host with a deploy record (``<state>/<name>/deploy.json``),
else ``distributed.workers``. The compose project and context names derive from the host
alone, so a host whose record was lost (``make clean``) is still undeployed by naming it.
restart and logs take a worker id (``gpu1-gpu0``) or a host (name or spec) from the records.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from azgo_core.config import ConfigError, load_settings

from .engine import Docker
from .hosts import Host, HostSpecError, parse_host, resolve_hosts
from .project import Record, records
from .ssh import SshSetup

DOWN_TIMEOUT = 120  # compose down: the workers' 30 s grace to deliver games, per container, in parallel


def main(args: argparse.Namespace) -> int:
    state = Path(args.state_dir)
    if args.command == "undeploy":
        return undeploy(args, state)
    found = select(records(state), args.worker)
    if isinstance(found, str):
        print(f"error: {found}", file=sys.stderr)
        return 2
    ssh = SshSetup(state)
    try:
        ssh.write([host for host, _, _ in found])
    except HostSpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    docker = Docker(ssh)
    if args.command == "restart":
        return restart(found, docker, state)
    return logs(found, docker, state, args.tail, args.follow)


def compose_file(state: Path, host: Host) -> Path:
    """The host's compose file, for compose commands by project.

    Compose needs one: without ``-f`` it searches the working directory and its parents and
    would pick up the repository's compose.yaml. A host without its file (a lost record) gets a
    stub with no services, under which ``down --remove-orphans`` removes every container of the project.
    """
    path = state / host.name / "compose.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# no record of this host's deployment: a stub for compose down\nname: {host.project}\nservices: {{}}\n")
    return path


def recorded_host(rec: Record, key_path: str | None = None) -> Host:
    return parse_host(rec.spec, key_path=rec.key_path or key_path)


def select(recs: dict[str, Record], name: str | None) -> list[tuple[Host, Record, list[str]]] | str:
    """(host, record, services) matching a worker id or a host; every worker when ``name`` is None; or an error."""
    if not recs:
        return "nothing deployed (no deploy records in the state directory): make deploy HOSTS=... first"
    chosen = []
    for folder, rec in recs.items():
        host = recorded_host(rec)
        if name is None or name in (folder, rec.spec, host.host):
            chosen.append((host, rec, [w["service"] for w in rec.workers]))
            continue
        services = [w["service"] for w in rec.workers if w["worker_id"] == name]
        if services:
            chosen.append((host, rec, services))
    if not chosen:
        known = ", ".join(w["worker_id"] for rec in recs.values() for w in rec.workers)
        return f"no deployed worker or host named {name!r} (deployed workers: {known})"
    return chosen


def undeploy(args: argparse.Namespace, state: Path) -> int:
    recs = records(state)
    try:
        settings = load_settings(args.config)
        if args.hosts or not recs:
            hosts = resolve_hosts(args.hosts, settings, None, args.ssh_key)
        else:
            hosts = [recorded_host(rec, args.ssh_key) for rec in recs.values()]
    except (ConfigError, HostSpecError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # a named host that was deployed with a key (or as another user) is reached as it was then
    hosts = [h if h.key_path or h.name not in recs else recorded_host(recs[h.name], args.ssh_key) for h in hosts]
    ssh = SshSetup(state)
    try:
        ssh.write(hosts)
    except HostSpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    docker = Docker(ssh)

    def down(host: Host) -> tuple[bool, str]:
        try:
            docker.ensure_context(host)
        except RuntimeError as e:
            return False, str(e)
        argv = ["compose", "-p", host.project, "-f", str(compose_file(state, host)), "down", "--remove-orphans",
                "--timeout", "30"]
        r = docker.remote(host, *argv, timeout=DOWN_TIMEOUT)
        if not r.ok:
            return False, f"{host.spec}: compose down failed: {r.last_line()} (the host keeps its workers; rerun)"
        if args.volumes:
            docker.remove_volumes(host)
        docker.remove_context(host)
        shutil.rmtree(state / host.name, ignore_errors=True)
        removed = sum(1 for line in r.err.splitlines() if line.strip().endswith("Removed") and "Container" in line)
        return True, f"{host.spec}: {removed} worker container(s) stopped and removed, context {host.context} removed"

    with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
        results = list(pool.map(down, hosts))
    for ok, line in results:
        print(("ok " if ok else "error: ") + line, file=sys.stdout if ok else sys.stderr)
    return 0 if all(ok for ok, _ in results) else 1


def restart(found: list[tuple[Host, Record, list[str]]], docker: Docker, state: Path) -> int:
    status = 0
    for host, rec, services in found:
        r = docker.remote(host, "compose", "-p", rec.project, "-f", str(compose_file(state, host)), "restart", "--timeout", "30",
                          *services, timeout=DOWN_TIMEOUT)
        names = [w["worker_id"] for w in rec.workers if w["service"] in services]
        if r.ok:
            print(f"ok {host.spec}: restarted {', '.join(names)}")
        else:
            print(f"error: {host.spec}: restart failed: {r.last_line()}", file=sys.stderr)
            status = 1
    return status


def logs(found: list[tuple[Host, Record, list[str]]], docker: Docker, state: Path, tail: str, follow: bool) -> int:
    """Each host's compose logs, every line prefixed with the host; in parallel when following."""
    lock = threading.Lock()

    def stream(item: tuple[Host, Record, list[str]]) -> int:
        host, rec, services = item
        argv = docker.remote_argv(host, "compose", "-p", rec.project, "-f", str(compose_file(state, host)), "logs",
                                  "--no-color", "--tail", str(tail),
                                  *(["--follow"] if follow else []), *services)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=docker.ssh.env(), text=True,
                                errors="replace")
        for line in proc.stdout:
            with lock:
                sys.stdout.write(f"{host.name} {line}")
                sys.stdout.flush()
        return proc.wait()

    if not follow:
        return max(stream(item) for item in found)
    with ThreadPoolExecutor(max_workers=len(found)) as pool:
        try:
            return max(pool.map(stream, found))
        except KeyboardInterrupt:
            return 0
