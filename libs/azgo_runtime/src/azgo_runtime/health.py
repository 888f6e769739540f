"""Liveness for container health checks, with nothing but Python: a heartbeat file and its check.

A service is alive while its main loop turns. Every loop checks its ``StopFlag`` between
units of work, so the flag is where liveness is recorded: when ``$AZGO_HEALTH_FILE`` is set
(the images set it), the flag's checks touch that file, at most once a second (``Heartbeat``).
A hung loop (a deadlock, a step that never returns) stops touching it.

The check, ``python -m azgo_runtime.health``, exits 0 when healthy and 1 when not, with one
line saying why (``docker inspect`` shows it):

    --file [PATH]     the file (default $AZGO_HEALTH_FILE) was touched within --max-age seconds:
                      the learner and self-play
    --http ROUTE      http://127.0.0.1:<broker.http_port>ROUTE answers 200: the broker's /healthz
                      (its loop ticked within 5 s). The port is $AZGO_BROKER__HTTP_PORT, else
                      the service's configuration (--config, $AZGO_CONFIG, AZGO_* overrides)

The file check imports nothing heavy (a check every few seconds in every container must cost
next to nothing); the HTTP check loads the settings only when the port is not in the environment.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ENV_HEALTH_FILE = "AZGO_HEALTH_FILE"
ENV_HTTP_PORT = "AZGO_BROKER__HTTP_PORT"
DEFAULT_MAX_AGE = 60.0  # seconds: longer than any single step of a loop (a training step, a batch of moves)


class Heartbeat:
    """Touches ``path`` on ``beat()``, at most every ``interval`` seconds."""

    def __init__(self, path: str | Path, interval: float = 1.0):
        self.path = Path(path)
        self.interval = interval
        self._next = 0.0

    @classmethod
    def from_env(cls) -> Heartbeat | None:
        """A heartbeat on ``$AZGO_HEALTH_FILE``, or None when it is not set."""
        path = os.environ.get(ENV_HEALTH_FILE)
        return cls(path) if path else None

    def beat(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval
        try:
            self.path.touch()
        except OSError:
            pass  # an unwritable health file fails the health check, never the service


def check_file(path: Path, max_age: float) -> tuple[bool, str]:
    """Whether ``path`` was touched within ``max_age`` seconds, and a line saying so."""
    try:
        age = time.time() - path.stat().st_mtime
    except OSError as e:
        return False, f"no heartbeat: {path}: {e.strerror}"
    if age > max_age:
        return False, f"stale heartbeat: {path} last touched {age:.0f} s ago (limit {max_age:g} s)"
    return True, f"alive: heartbeat {age:.1f} s ago"


def broker_http_port(config: str | None) -> int:
    """The broker's HTTP port: $AZGO_BROKER__HTTP_PORT (it overrides the file anyway), else the settings."""
    port = os.environ.get(ENV_HTTP_PORT)
    if port:
        return int(port)
    from azgo_core.config import DEFAULT_CONFIG_PATH, load_settings

    return load_settings(config or os.environ.get("AZGO_CONFIG") or DEFAULT_CONFIG_PATH).broker.http_port


def check_http(url: str, timeout: float) -> tuple[bool, str]:
    """Whether ``url`` answers 200 within ``timeout`` seconds, and a line saying so."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = r.read(200).decode(errors="replace").strip()
            return r.status == 200, f"{url}: {r.status} {body}"
    except urllib.error.HTTPError as e:
        return False, f"{url}: {e.code} {e.read(200).decode(errors='replace').strip()}"
    except (OSError, ValueError) as e:
        return False, f"{url}: {e}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m azgo_runtime.health", description="container health check: exit 0 when healthy")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--file", nargs="?", const="", metavar="PATH",
                      help=f"heartbeat file touched within --max-age seconds (default: ${ENV_HEALTH_FILE})")
    what.add_argument("--http", metavar="ROUTE", help="GET this route of the broker's HTTP port on 127.0.0.1, e.g. /healthz")
    p.add_argument("--max-age", type=float, default=DEFAULT_MAX_AGE, help="seconds (default %(default)g)")
    p.add_argument("--timeout", type=float, default=3.0, help="HTTP timeout in seconds (default %(default)g)")
    p.add_argument("--config", help="config file for --http (default: $AZGO_CONFIG or configs/azgo.yaml)")
    args = p.parse_args(argv)
    if args.http is not None:
        try:
            port = broker_http_port(args.config)
        except Exception as e:  # a bad config or port: unhealthy, with the reason
            print(f"unhealthy: cannot find the broker's HTTP port: {e}")
            return 1
        ok, line = check_http(f"http://127.0.0.1:{port}{args.http}", args.timeout)
    else:
        path = args.file or os.environ.get(ENV_HEALTH_FILE)
        if not path:
            print(f"unhealthy: no heartbeat file (give --file PATH or set ${ENV_HEALTH_FILE})")
            return 1
        ok, line = check_file(Path(path), args.max_age)
    print(line if ok else f"unhealthy: {line}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
