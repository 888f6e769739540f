"""ZeroMQ CURVE key pairs (``make keys``): the broker's and one per worker, as files.

Layout under the keys directory (default ``keys/``, never committed):

    broker.key, broker.key_secret            the broker's pair (workers get broker.key)
    workers/<name>.key, <name>.key_secret    one pair per client: ``learner``, ``evaluator``, ``selfplay``
                                             (shared by the replicas of ``--scale``), one per
                                             remote host of ``distributed.workers``
    authorized/<name>.key                    the public keys the broker admits (its allow-list)

Files are ZeroMQ's certificate format (``zmq.auth.create_certificates``; ``load_certificate``
reads them). Existing pairs are never replaced: a worker out there holds them. A pair is written
into a temporary folder and renamed into place, so an interrupted run leaves no half pair.

Permissions: the keys folder and workers/ are 0700, so no other user of the machine can reach
a secret (authorized/, public keys only, is 0755). The files themselves are 0644 because
Compose mounts secrets as bind mounts outside Swarm (their uid/gid/mode are ignored there)
and the images' services run as an unprivileged user.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import zmq.auth

log = logging.getLogger("azgo.keys")

DEFAULT_DIR = Path("keys")
DEFAULT_CLIENTS = ("learner", "selfplay", "evaluator")
BROKER = "broker"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _make_dir(path: Path, mode: int = 0o700) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    return path


def _create_pair(folder: Path, name: str) -> bool:
    """``folder/name.key`` and ``.key_secret`` unless both exist; True when it made them."""
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    if public.exists() and secret.exists():
        return False
    with tempfile.TemporaryDirectory(dir=folder, prefix=".new-") as tmp:
        made_public, made_secret = (Path(p) for p in zmq.auth.create_certificates(tmp, name))
        for made in (made_public, made_secret):
            made.chmod(0o644)
        os.replace(made_secret, secret)  # the secret first: a pair with a public key alone is never left
        os.replace(made_public, public)
    return True


def create_keys(root: Path, clients: list[str]) -> list[str]:
    """The broker's pair and one per client under ``root`` (see the module docstring); returns what it created."""
    for name in clients:
        if not NAME.match(name) or name == BROKER:
            raise ValueError(f"bad key name {name!r}: letters, digits, '_', '.', '-' (not 'broker')")
    root = _make_dir(Path(root))
    # authorized/ holds public keys only; the broker's unprivileged user lists it through its mount
    workers, authorized = _make_dir(root / "workers"), _make_dir(root / "authorized", 0o755)
    created = [BROKER] if _create_pair(root, BROKER) else []
    for name in clients:
        if _create_pair(workers, name):
            created.append(name)
            _authorize(workers / f"{name}.key", authorized / f"{name}.key")
    return created


def _authorize(public: Path, target: Path) -> None:
    """Admit a new pair's public key: written under a name the broker's reload ignores, then renamed.

    Only new pairs are admitted: a key an operator removed from authorized/ (revoked) stays
    out when keys are made again for other names, by `make keys`, `make run` or `make deploy`.
    """
    tmp = target.with_name(f".{target.name}.new")
    shutil.copyfile(public, tmp)
    os.replace(tmp, target)


def config_hosts(config: str | None) -> list[str]:
    """The remote self-play hosts of ``distributed.workers`` in the configuration, one key pair each."""
    from azgo_core.config import load_settings

    return [w.host for w in load_settings(config).distributed.workers]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m azgo_tools.keys",
                                description="Create the broker's CURVE key pair and one per worker; existing pairs are kept.")
    p.add_argument("names", nargs="*", help=f"client key names besides {', '.join(DEFAULT_CLIENTS)} and the config's hosts")
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="keys directory (default %(default)s)")
    p.add_argument("--config", help="also one pair per distributed.workers[].host of this config file")
    args = p.parse_args(argv)
    names = list(DEFAULT_CLIENTS) + args.names
    try:
        if args.config:
            names += config_hosts(args.config)
        created = create_keys(args.dir, list(dict.fromkeys(names)))
    except Exception as e:  # a bad name, a bad config, an unwritable folder: one line, exit 2
        print(f"error: {e}", file=sys.stderr)
        return 2
    kept = [n for n in [BROKER, *dict.fromkeys(names)] if n not in created]
    print(f"keys in {args.dir}/: created {', '.join(created) or 'none'}; kept {', '.join(kept) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
