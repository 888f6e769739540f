"""``azgo deploy`` and ``azgo doctor``: checks, images, compose projects (undeploy/restart/logs: ``manage``).

deploy, for the hosts of ``--hosts`` or ``distributed.workers``:

1. checks every host in parallel (``checks``); any failure prints the table and stops before
   anything changes anywhere;
2. ships the self-play image to the hosts that lack its id (``engine``), or pushes and pulls it
   through ``--registry``;
3. writes each host's compose project (``project``) and runs ``docker --context azgo-<name>
   compose -p azgo-selfplay-<name> up -d``: new hosts start, changed ones are updated, workers of
   GPUs no longer asked for are removed; other hosts are left alone, so adding a host while
   training runs is one more deploy;
4. with ``--wait``, polls the broker's /status until the new workers are Active.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from azgo_core.config import ConfigError, Settings, load_settings

from .. import keys as keyfiles
from .checks import FAIL, Check, HostFacts, Wanted, check_host, local_checks, table
from .engine import DeployError, Docker, ImageArchive, pull_on_host, push_to_registry
from .hosts import Host, HostSpecError, check_address, resolve_hosts
from .project import Record, Worker, compose_project, plan_workers, write_compose
from .ssh import SshSetup, run

UP_TIMEOUT = 600


def main(args: argparse.Namespace) -> int:
    if args.command in ("undeploy", "restart", "logs"):
        from . import manage

        return manage.main(args)
    console = Console() if sys.stdout.isatty() else Console(width=200)  # a log gets the whole table
    try:
        settings = load_settings(args.config)
        hosts = resolve_hosts(args.hosts, settings, args.gpus, args.ssh_key)
        broker = check_address(args.broker)
        ssh = SshSetup(Path(args.state_dir))
        ssh.write(hosts)
    except (ConfigError, HostSpecError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    docker = Docker(ssh)
    wanted = Wanted(args.image, args.gpu_image, broker, (settings.broker.router_port, settings.broker.pub_port),
                    broker_required=args.command == "doctor")
    facts, rows = check_all(hosts, ssh, docker, wanted)
    console.print(table(rows, title=f"azgo {args.command}: {len(hosts)} host(s)"))
    for f in facts:
        for note in f.notes:
            console.print(f"[yellow]note[/]: {note}")
    failed = [r for r in rows if r.status == FAIL]
    if args.command == "doctor":
        console.print(f"[bold red]{len(failed)} problem(s)[/]" if failed else "[green]all checks passed[/]")
        return 1 if failed else 0
    if failed:
        console.print(f"[bold red]{len(failed)} check(s) failed[/]: nothing was changed. Fix them (see the fix column; "
                      "make doctor HOSTS=... checks again) or leave those hosts out, and rerun.")
        return 1
    try:
        deployed = deploy(facts, settings, args, docker, console)
    except DeployError as e:
        console.print(f"[bold red]error[/]: {e}")
        return 1
    if args.wait > 0:
        return wait_active(deployed, settings, args, console)
    return 0


def check_all(hosts: list[Host], ssh: SshSetup, docker: Docker, wanted: Wanted) -> tuple[list[HostFacts], list[Check]]:
    """Checks of this machine and of every host (in parallel): (facts per host, all table rows)."""
    images = (wanted.image, wanted.gpu_image)
    ids = {i: docker.image_id(i) for i in images}
    sizes = {i: docker.image_size(i) for i in images}
    with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
        facts = list(pool.map(lambda h: check_host(h, ssh, docker, wanted, ids, sizes), hosts))
    needed = sorted({wanted.gpu_image if f.gpus else wanted.image for f in facts})
    local = local_checks(docker, needed)
    return facts, local + [c for f in facts for c in f.checks]


def deploy(facts: list[HostFacts], settings: Settings, args: argparse.Namespace, docker: Docker,
           console: Console) -> list[tuple[Host, list[Worker]]]:
    """Ship images, write and start every host's project; returns (host, workers) per host."""
    images = ship_images(facts, args, docker, console)
    keys_dir = Path(args.keys_dir)
    plans = [(f, plan_workers(f.host, f.gpus)) for f in facts]
    made = keyfiles.create_keys(keys_dir, [w.worker_id for _, workers in plans for w in workers])
    if made:
        console.print(f"keys: created {', '.join(made)} in {keys_dir}/ (the broker admits keys from {keys_dir}/authorized/)")

    def start(item: tuple[HostFacts, list[Worker]]) -> str:
        f, workers = item
        image = images[f.image_key]
        env = docker.ssh.env()
        env["AZGO_DEPLOY_BROKER_KEY"] = (keys_dir / "broker.key").read_text()
        for w in workers:
            env[w.key_env] = (keys_dir / "workers" / f"{w.worker_id}.key_secret").read_text()
        # the keys and the image id: a rebuilt image under the same name restarts the workers too
        inputs = [env[k] for k in sorted(env) if k.startswith("AZGO_DEPLOY_")] + [docker.image_id(image) or image]
        digest = hashlib.sha256("\n".join(inputs).encode()).hexdigest()
        project = compose_project(f.host, workers, image=image, settings=settings, broker=f.broker, secrets_digest=digest)
        folder = Path(args.state_dir) / f.host.name
        path = write_compose(folder / "compose.yaml", f.host, project)
        r = run(docker.remote_argv(f.host, "compose", "-p", f.host.project, "-f", str(path), "up", "-d",
                                   "--remove-orphans", "--pull", "never"), env, UP_TIMEOUT)
        if not r.ok:
            raise DeployError(f"{f.host.spec}: compose up failed: {r.err.strip()[-800:]}")
        Record(f.host.spec, f.host.key_path, f.host.context, f.host.project, image, f.broker,
               [{"worker_id": w.worker_id, "service": w.service, "gpu": w.gpu} for w in workers]).save(folder)
        games, _ = settings.weighted_self_play(f.host.weight)
        return (f"{f.host.spec}: {', '.join(w.worker_id for w in workers)} started -> broker {f.broker} "
                f"(weight {f.host.weight:g}: {games} games at once per worker)")

    with ThreadPoolExecutor(max_workers=min(16, len(plans))) as pool:
        for line in pool.map(start, plans):
            console.print(f"[green]ok[/] {line}")
    console.print("make status shows them; make logs WORKER=... their output; make undeploy HOSTS=... stops them")
    return [(f.host, workers) for f, workers in plans]


def ship_images(facts: list[HostFacts], args: argparse.Namespace, docker: Docker, console: Console) -> dict[str, str]:
    """Get each host the image it needs; returns the image name the compose files use, by kind (cpu, gpu)."""
    names = {"cpu": args.image, "gpu": args.gpu_image}
    if args.registry:
        for kind in sorted({f.image_key for f in facts}):
            names[kind] = push_to_registry(docker, names[kind], args.registry)
            console.print(f"pushed {names[kind]}")
        with ThreadPoolExecutor(max_workers=min(16, len(facts))) as pool:
            list(pool.map(lambda f: pull_on_host(docker, f.host, names[f.image_key]), facts))
        return names
    for kind in sorted({f.image_key for f in facts if not f.has_image}):
        targets = [f for f in facts if not f.has_image and f.image_key == kind]
        image = names[kind]
        ship(image, targets, Path(args.state_dir) / "images", docker, console)
    return names


def ship(image: str, targets: list[HostFacts], folder: Path, docker: Docker, console: Console) -> None:
    """Compress ``image`` once and load it on every target host in parallel, with progress bars."""
    size = docker.image_size(image)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                        console=Console(stderr=True), transient=False)
    start = time.monotonic()
    with progress:
        task = progress.add_task(f"compress {image}", total=size or None)
        archive = ImageArchive.make(docker, image, docker.image_id(image) or "", folder,
                                    lambda n: progress.advance(task, n))
        packed = archive.path.stat().st_size
        progress.update(task, completed=size)
        tasks = {f.host.name: progress.add_task(f"load on {f.host.spec}", total=packed) for f in targets}
        with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
            list(pool.map(lambda f: archive.send(docker, f.host, lambda n: progress.advance(tasks[f.host.name], n)),
                          targets))
    console.print(f"shipped {image} ({size / 2**30:.2f} GiB, {packed / 2**30:.2f} GiB compressed) to "
                  f"{', '.join(f.host.spec for f in targets)} in {time.monotonic() - start:.0f} s")


def wait_active(deployed: list[tuple[Host, list[Worker]]], settings: Settings, args: argparse.Namespace,
                console: Console) -> int:
    """Poll the broker's /status until every deployed worker is Active, or ``args.wait`` seconds pass."""
    from azgo_runtime.status import StatusUnavailable, fetch_status

    from ..status import default_url

    url = args.status_url or default_url(args.config)
    ids = {w.worker_id for _, workers in deployed for w in workers}
    deadline = time.monotonic() + args.wait
    states: dict[str, str] = {}
    while True:
        try:
            states = {w["worker_id"]: w.get("state", "?") for w in fetch_status(url).get("workers", [])
                      if w.get("worker_id") in ids}
        except StatusUnavailable as e:
            states = {"(broker)": str(e)}
        if all(states.get(i) == "Active" for i in ids) or time.monotonic() > deadline:
            break
        time.sleep(1.0)  # a polling period with a deadline, not synchronisation
    missing = sorted(i for i in ids if states.get(i) != "Active")
    for i in sorted(ids):
        console.print(f"  {i}: {states.get(i, 'not seen by the broker')}")
    if missing:
        console.print(f"[yellow]not Active after {args.wait:g} s[/]: {', '.join(missing)} (make logs WORKER=...)")
        return 1
    console.print(f"[green]all {len(ids)} worker(s) Active[/] at {url}")
    return 0
