"""``python -m azgo_evaluator --config FILE [--id ID]``: the evaluator service (see ``evaluator``)."""

from __future__ import annotations

import logging
import os
import sys

from azgo_runtime.service import StopFlag, parser, settings_or_exit, setup_logging

from .evaluator import Evaluator

log = logging.getLogger("azgo.evaluator")


def yield_cpu(nice: int) -> None:
    """Run at ``nice`` (GNU Go inherits it) so that self-play and training get the CPU first.

    Linux's autogroups make a niceness count only among the processes of one session: a
    service that leads its own session (``make run`` starts each so) would still get a whole
    group's share. Such a leader also sets its session group's nice (``/proc/self/autogroup``);
    a process inside someone else's session (a shell) leaves that group alone.
    """
    os.nice(nice)
    if os.getsid(0) != os.getpid():
        return
    try:
        with open("/proc/self/autogroup", "w", encoding="ascii") as f:
            f.write(str(nice))
    except OSError as e:  # no autogroups in this kernel, or not allowed: the plain niceness stays
        log.info("session group nice not set (%s): the niceness counts within the session only", e)


def main(argv: list[str] | None = None) -> int:
    p = parser("azgo-evaluator", "Play every new generation against earlier ones, GNU Go and a random player; "
                                 "fit Elo ratings and report them to the broker.")
    p.add_argument("--id", default="evaluator", help="the evaluator's id at the broker (default: evaluator)")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    settings = settings_or_exit(args.config, log, role="evaluator")
    import torch  # after the config check: a bad config answers without loading torch

    torch.set_num_threads(settings.evaluation.threads)
    yield_cpu(settings.evaluation.nice)
    return Evaluator(settings, StopFlag(), evaluator_id=args.id).run()


if __name__ == "__main__":
    sys.exit(main())
