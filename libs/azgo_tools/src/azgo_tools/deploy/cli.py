"""The options of ``azgo deploy | undeploy | doctor | restart | logs`` (``azgo_tools.cli`` registers them).

Only argparse here, so ``azgo --help`` stays instant; the commands themselves are in
``azgo_tools.deploy.commands``. Defaults come from the environment where make passes them.
"""

from __future__ import annotations

import argparse
import os

COMMANDS = ("deploy", "undeploy", "doctor", "restart", "logs")


def _common(p: argparse.ArgumentParser, hosts: bool = True) -> None:
    p.add_argument("--config", default=os.environ.get("AZGO_CONFIG", "configs/azgo.yaml"),
                   help="YAML config file: the workers play its settings; distributed.workers lists the default hosts")
    if hosts:
        p.add_argument("--hosts", metavar="USER@HOST[:PORT],...",
                       help="hosts to act on (default: distributed.workers of --config)")
    p.add_argument("--ssh-key", metavar="FILE", default=os.environ.get("AZGO_SSH_KEY") or None,
                   help="SSH private key for hosts without key_path (default: $AZGO_SSH_KEY, else your ssh's)")
    p.add_argument("--state-dir", metavar="DIR", default=os.environ.get("AZGO_DEPLOY_DIR", "build/deploy"),
                   help="generated compose files, ssh configuration, deploy records (default: $AZGO_DEPLOY_DIR or build/deploy)")


def _targets(p: argparse.ArgumentParser) -> None:
    prefix, tag = os.environ.get("AZGO_IMAGE_PREFIX", "azgo"), os.environ.get("AZGO_IMAGE_TAG", "dev")
    p.add_argument("--gpus", metavar="all|none|0,1", default=None,
                   help="GPUs to use on each host, one worker each (default: each host's gpu_id, else every GPU found, "
                        "else one CPU worker)")
    p.add_argument("--broker", metavar="ADDR", default=None,
                   help="the broker's address as the hosts reach it (default: this machine's address on the route to each host)")
    p.add_argument("--image", default=f"{prefix}/selfplay:{tag}", help="CPU self-play image (default %(default)s)")
    p.add_argument("--gpu-image", default=f"{prefix}/selfplay-gpu:{tag}", help="GPU self-play image (default %(default)s)")


def add_parsers(sub: argparse._SubParsersAction, lazy_command) -> None:
    """Register the five commands; ``lazy_command(module)`` makes their lazy ``run``."""
    run = lazy_command("deploy.commands")

    p = sub.add_parser("deploy", help="start self-play on remote hosts over SSH (make deploy)",
                       description="For each host: check it (ssh, engine, GPUs, disk, broker), ship the self-play image "
                                   "(docker save | docker --context H load, or REGISTRY), start one worker per GPU "
                                   "with its own key, pointed at the broker. Rerunning adds hosts and updates changed ones.")
    _common(p)
    _targets(p)
    p.add_argument("--registry", default=os.environ.get("AZGO_REGISTRY") or None, metavar="HOST[:PORT]",
                   help="push the image there and let the hosts pull it, instead of shipping it over SSH")
    p.add_argument("--keys-dir", default=os.environ.get("AZGO_KEYS_DIR", "keys"),
                   help="make keys' folder: each worker's key pair (made when missing) and the broker's public key")
    p.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                   help="then wait up to SECONDS for the workers to be Active at the broker (0: do not wait)")
    p.add_argument("--status-url", default=os.environ.get("AZGO_STATUS_URL"),
                   help="the broker's HTTP address for --wait (default: broker.http_port on this machine)")
    p.set_defaults(run=run)

    p = sub.add_parser("doctor", help="check remote hosts and print what is wrong and how to fix it (make doctor)",
                       description="Run deploy's checks only and print a table: ssh, engine, GPUs, disk, image, broker "
                                   "reachability, each failure with its fix. Exit status 1 when anything fails.")
    _common(p)
    _targets(p)
    p.set_defaults(run=run)

    p = sub.add_parser("undeploy", help="stop and remove self-play on remote hosts (make undeploy)",
                       description="Stop the hosts' workers (they deliver finished games first) and remove their "
                                   "containers and docker contexts; training goes on with the others.")
    _common(p)
    p.add_argument("--volumes", action="store_true", help="also delete the workers' outboxes (undelivered games)")
    p.set_defaults(run=run)

    p = sub.add_parser("restart", help="restart one deployed worker, or all of a host's (make restart WORKER=...)")
    _common(p, hosts=False)
    p.add_argument("worker", help="worker id (make status shows them: HOST-gpu0, HOST-cpu) or a host")
    p.set_defaults(run=run)

    p = sub.add_parser("logs", help="deployed workers' logs (make logs [WORKER=...])")
    _common(p, hosts=False)
    p.add_argument("worker", nargs="?", help="worker id or host (default: every deployed worker)")
    p.add_argument("--tail", default="100", help="lines from the end of each log (default 100; all)")
    p.add_argument("-f", "--follow", action="store_true", help="keep following until Ctrl-C")
    p.set_defaults(run=run)
