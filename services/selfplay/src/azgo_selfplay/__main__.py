"""``python -m azgo_selfplay --config FILE [--worker-id ID] [--games N] [--seed S]``: one self-play worker.

Plays until SIGTERM/SIGINT or N games (default ``self_play.games_per_worker``, 0 = forever),
then delivers what it finished for a few seconds and exits 0; undelivered batches stay in the
outbox for the next run. Custom workers reuse this main: ``main(MyWorker)``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from azgo_runtime.service import StopFlag, parser, settings_or_exit, setup_logging

from .identity import WorkerIdInUse
from .worker import SelfPlayWorker

log = logging.getLogger("azgo.selfplay")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(worker_cls: type[SelfPlayWorker] = SelfPlayWorker, argv: list[str] | None = None) -> int:
    p = parser("azgo-selfplay", "self-play worker: plays with the broker's current model and ships finished games")
    p.add_argument("--worker-id", help="worker id (default: $AZGO_WORKER_ID or the host name)")
    p.add_argument("--games", type=_positive, help="stop after this many games (default: self_play.games_per_worker)")
    p.add_argument("--seed", type=int, help="random seed of the games (default: a fresh random one, logged)")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    settings = settings_or_exit(args.config, log, role="selfplay")
    stop = StopFlag()
    try:
        worker = worker_cls(settings, worker_id=args.worker_id, games=args.games, seed=args.seed, stop=stop)
    except (WorkerIdInUse, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
