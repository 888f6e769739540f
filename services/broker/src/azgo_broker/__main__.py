"""``python -m azgo_broker --config FILE``: run the broker until SIGTERM or SIGINT (exit status 0)."""

from __future__ import annotations

import logging
import sys

import zmq
from prometheus_client import disable_created_metrics

from azgo_runtime.service import StopFlag, parser, settings_or_exit, setup_logging

from .server import Broker

log = logging.getLogger("azgo.broker")


def main(argv: list[str] | None = None) -> int:
    args = parser("azgo-broker", "azgo's broker: model registry, game store, worker registry, metrics").parse_args(argv)
    setup_logging(args.verbose)
    settings = settings_or_exit(args.config, log, role="broker")
    disable_created_metrics()  # no *_created series: they double /metrics and nobody graphs them
    stop = StopFlag()
    try:
        broker = Broker(settings)
    except (OSError, zmq.ZMQError) as e:  # a port in use, an unwritable data dir
        log.error("cannot start the broker: %s", e)
        return 1
    try:
        broker.run(stop)
    finally:
        broker.close()
    log.info("broker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
