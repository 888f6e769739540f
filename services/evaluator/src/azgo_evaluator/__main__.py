"""``python -m azgo_evaluator --config FILE [--id ID]``: the evaluator service (see ``evaluator``)."""

from __future__ import annotations

import logging
import os
import sys

from azgo_runtime.service import StopFlag, parser, settings_or_exit, setup_logging

from .evaluator import Evaluator

log = logging.getLogger("azgo.evaluator")


def main(argv: list[str] | None = None) -> int:
    p = parser("azgo-evaluator", "Play every new generation against earlier ones, GNU Go and a random player; "
                                 "fit Elo ratings and report them to the broker.")
    p.add_argument("--id", default="evaluator", help="the evaluator's id at the broker (default: evaluator)")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    settings = settings_or_exit(args.config, log, role="evaluator")
    import torch  # after the config check: a bad config answers without loading torch

    torch.set_num_threads(settings.evaluation.threads)
    os.nice(settings.evaluation.nice)  # self-play and training first; GNU Go inherits it
    return Evaluator(settings, StopFlag(), evaluator_id=args.id).run()


if __name__ == "__main__":
    sys.exit(main())
