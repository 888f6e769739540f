"""The start of every service main: ``--config``, settings, logging, and a stop flag.

A service main is: ``args, settings = start("broker", description)``, build its parts, loop
until ``stop`` is set. A bad config value ends the process here with exit status 2 and one
line per bad field, before any socket or file is touched.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from azgo_core.config import DEFAULT_CONFIG_PATH, ConfigError, Settings, load_settings, settings_yaml

from .health import Heartbeat

EXIT_CONFIG = 2


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopFlag:
    """Set by SIGINT, SIGTERM or SIGHUP (or ``set()``); loops check it between units of work.

    A repeated signal calls ``on_repeat`` when given (the launcher kills its children then)
    and is otherwise ignored: a service that is already stopping finishes its step and its
    checkpoint rather than being cut half-way (SIGKILL remains for that).

    A loop that checks its flag is alive: the process's flag (``install``) beats a
    ``health.Heartbeat`` on every check when ``$AZGO_HEALTH_FILE`` is set (container health checks).
    """

    def __init__(self, install: bool = True, on_repeat=None):
        self._event = threading.Event()
        self.signal: int | None = None
        self.on_repeat = on_repeat
        self.heartbeat = Heartbeat.from_env() if install else None
        if install:
            for sig in STOP_SIGNALS:
                signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self._event.is_set():
            if self.on_repeat is not None:
                self.on_repeat()
            return
        self.signal = signum
        self._event.set()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        if self.heartbeat is not None:
            self.heartbeat.beat()
        return self._event.is_set()

    __bool__ = is_set

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking early when stopped; returns is_set()."""
        if self.heartbeat is not None:
            self.heartbeat.beat()
        return self._event.wait(timeout)


def setup_logging(verbose: int = 0) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(stream=sys.stderr, level=level,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--config", default=os.environ.get("AZGO_CONFIG", str(DEFAULT_CONFIG_PATH)),
                   help="YAML config file (default: $AZGO_CONFIG or configs/azgo.yaml); AZGO_SECTION__FIELD overrides")
    p.add_argument("-v", "--verbose", action="count", default=0, help="debug logging")
    return p


def settings_or_exit(path: str, log: logging.Logger, role: str | None = None) -> Settings:
    """Load the settings or end the process with the config error (exit status 2).

    ``role`` (broker, selfplay, learner, evaluator): also check, when CURVE is on, that this
    program's key files are there (``azgo_runtime.curve``), and end the same way if not.
    """
    from .curve import CurveKeyError, client_curve, server_keys

    try:
        settings = load_settings(path)
        if role == "broker":
            server_keys(settings)
        elif role is not None:
            client_curve(settings, role)
    except (ConfigError, CurveKeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    log.debug("resolved configuration:\n%s", settings_yaml(settings))
    return settings
