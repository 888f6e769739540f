"""The ``azgo`` command line: one subcommand per tool (``azgo gtp``, later ``config``, ``status``).

Each subcommand registers itself with ``add_<name>(subparsers)`` and runs through the
function it stores as ``run``; heavy modules (torch, numba) are imported inside that
function, so ``azgo --help`` stays instant. Logging goes to stderr.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from typing import TextIO

from . import __version__, coords

log = logging.getLogger("azgo")

DEFAULT_VISITS = 200


class NetPlayers:
    """Player factory for the GTP engine: MCTS over a network.

    With a model file the network is loaded once and only its board size is playable; without
    one every board size gets a freshly initialised network (legal, but weak, play).
    """

    def __init__(self, visits: int, device: str = "cpu"):
        self.visits, self.device = visits, device
        self.net = self.meta = None

    def load(self, path: str) -> None:
        """Play only with the model in ``path``; raises ``OSError`` or ``ModelFileError``."""
        from .model import load_model

        self.net, self.meta = load_model(path)

    @property
    def board_size(self) -> int | None:
        return self.meta.board_size if self.meta else None

    def __call__(self, size: int):
        from .model import AZNet, NetConfig, make_evaluator
        from .search import MctsPlayer, SearchConfig

        if self.net is not None:
            if size != self.board_size:
                raise ValueError(f"the model plays {self.board_size}x{self.board_size}, not {size}x{size}")
            net = self.net
        else:
            net = AZNet(NetConfig(board_size=size))
        # the search writes the input planes, so it must use the network's history length
        config = SearchConfig(visits=self.visits, cheap_visits=self.visits, history=net.config.history)
        return MctsPlayer(make_evaluator(net, device=self.device), visits=self.visits, config=config)


def _protocol_stdout() -> TextIO:
    """The process's stdout, reserved for the protocol; file descriptor 1 then points at stderr.

    Anything a library prints (Python or C level) lands on stderr instead of corrupting the
    controller's stream.
    """
    sys.stdout.flush()
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", encoding="utf-8", newline="\n")


def run_gtp(args: argparse.Namespace) -> int:
    from .gtp import DEFAULT_SIZE, GtpEngine

    players = NetPlayers(args.visits, args.device)
    if args.model:  # torch is imported only when a network is needed, to answer `name` fast
        from .model import ModelFileError

        try:
            players.load(args.model)
        except (OSError, ModelFileError) as e:
            log.error("cannot load model %s: %s", args.model, e)
            return 2
    size = args.size or players.board_size or DEFAULT_SIZE
    if players.board_size is not None and size != players.board_size:
        log.error("--size %d does not match the model's board size %d", size, players.board_size)
        return 2
    if players.meta is not None:
        log.info("model %s: generation %d, %dx%d", args.model, players.meta.generation, size, size)
    engine = GtpEngine(player_factory=players, size=size, komi=args.komi)
    sys.stdin.reconfigure(errors="replace")
    engine.run(sys.stdin, _protocol_stdout())
    return 0


def add_gtp(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gtp", help="play Go over GTP v2 on stdin/stdout", description="A GTP v2 engine.")
    p.add_argument("--model", metavar="FILE", help="model file (.safetensors); default: a fresh, untrained network")
    p.add_argument("--visits", type=_positive_int, default=DEFAULT_VISITS, help="MCTS visits per move")
    p.add_argument("--size", type=int, choices=range(coords.MIN_SIZE, coords.MAX_SIZE + 1), metavar="N",
                   help="board size (default: the model's, else 9)")
    p.add_argument("--komi", type=_finite_float, default=7.5, help="komi (default 7.5)")
    p.add_argument("--device", default="cpu", help="torch device for the network (cpu, cuda, cuda:1)")
    p.set_defaults(run=run_gtp)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="azgo", description="azgo: distributed AlphaZero for Go")
    parser.add_argument("--version", action="version", version=f"azgo {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (repeatable)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_gtp(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.INFO - 10 * min(args.verbose, 1)
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
