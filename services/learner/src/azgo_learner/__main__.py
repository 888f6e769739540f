"""``python -m azgo_learner --config FILE``: the learner service (see ``loop``)."""

from __future__ import annotations

import logging
import sys

import torch

from azgo_runtime.service import EXIT_CONFIG, StopFlag, parser, settings_or_exit, setup_logging

from .checkpoint import CheckpointError
from .loop import Learner

log = logging.getLogger("azgo.learner")


def main(argv: list[str] | None = None) -> int:
    args = parser("azgo-learner", "Train on the broker's window of self-play games and publish generations.").parse_args(argv)
    setup_logging(args.verbose)
    settings = settings_or_exit(args.config, log, role="learner")
    torch.set_num_threads(settings.learner.threads)
    learner = Learner(settings, StopFlag())
    try:
        learner.run()
    except CheckpointError as exc:
        log.error("cannot resume: %s", exc)
        return EXIT_CONFIG
    return 0


if __name__ == "__main__":
    sys.exit(main())
