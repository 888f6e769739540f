"""The ``azgo`` command line: one subcommand per tool (``azgo gtp``, ``config``, ``status``, ``run``, ...).

Each subcommand registers itself with ``add_<name>(subparsers)`` and runs through the
function it stores as ``run``; heavy modules (torch, numba) are imported inside that
function, so ``azgo --help`` stays instant. Logging goes to stderr.

The command and everything it runs (the launcher, matches, reports and plots, the status view,
keys, deploy) form ``azgo_tools``, installed on the operator's machine and not in the service
images: the services need only ``azgo_core`` and the thin ``azgo_runtime``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from typing import TextIO

from azgo_core import __version__, coords

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
        from azgo_core.model import load_model

        self.net, self.meta = load_model(path)

    @property
    def board_size(self) -> int | None:
        return self.meta.board_size if self.meta else None

    def __call__(self, size: int):
        from azgo_core.model import AZNet, NetConfig, make_evaluator
        from azgo_core.search import MctsPlayer, SearchConfig

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
    from azgo_core.gtp import DEFAULT_SIZE, GtpEngine

    players = NetPlayers(args.visits, args.device)
    if args.model:  # torch is imported only when a network is needed, to answer `name` fast
        import torch

        from azgo_core.model import ModelFileError

        torch.set_num_threads(args.threads)
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


THREADS_HELP = ("torch CPU threads of the network (default 1: a search of one position at a time gains little from "
                "more, and several threads stall on a busy machine)")


def add_gtp(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gtp", help="play Go over GTP v2 on stdin/stdout", description="A GTP v2 engine.")
    p.add_argument("--model", metavar="FILE", help="model file (.safetensors); default: a fresh, untrained network")
    p.add_argument("--visits", type=_positive_int, default=DEFAULT_VISITS, help="MCTS visits per move")
    p.add_argument("--size", type=int, choices=range(coords.MIN_SIZE, coords.MAX_SIZE + 1), metavar="N",
                   help="board size (default: the model's, else 9)")
    p.add_argument("--komi", type=_finite_float, default=7.5, help="komi (default 7.5)")
    p.add_argument("--device", default="cpu", help="torch device for the network (cpu, cuda, cuda:1)")
    p.add_argument("--threads", type=_positive_int, default=1, help=THREADS_HELP)
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


def run_config(args: argparse.Namespace) -> int:
    from azgo_core.config import ConfigError, load_settings, settings_yaml

    if args.reference:
        from azgo_core.config_reference import reference_markdown

        sys.stdout.write(reference_markdown())
        return 0
    try:
        settings = load_settings(args.config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(settings_yaml(settings))
    return 0


def add_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print the resolved configuration (file + AZGO_* environment)",
                       description="Validate the config file with AZGO_SECTION__FIELD overrides applied and print the result "
                                   "as YAML; exit status 2 with every bad field's path when it is invalid.")
    p.add_argument("--config", default=os.environ.get("AZGO_CONFIG", "configs/azgo.yaml"),
                   help="YAML config file (default: $AZGO_CONFIG or configs/azgo.yaml)")
    p.add_argument("--reference", action="store_true",
                   help="print the reference of every setting (docs/config-reference.md: make docs) instead")
    p.set_defaults(run=run_config)


def _lazy_command(module: str):
    """A subcommand whose module (``azgo_tools.<module>``: rich, matplotlib, zmq) is imported when it runs."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        return importlib.import_module(f"azgo_tools.{module}").main(args)

    return run


def add_services(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="the worker table from the broker's /status",
                       description="Show the broker's workers (Active / Syncing / Error / Offline), games/s, model generation.")
    p.add_argument("--url", default=os.environ.get("AZGO_STATUS_URL"),
                   help="broker HTTP address (default: $AZGO_STATUS_URL, else broker.http_port of --config on this host)")
    p.add_argument("--config", default=os.environ.get("AZGO_CONFIG", "configs/azgo.yaml"), help="YAML config file")
    p.add_argument("--watch", nargs="?", const=2.0, type=float, metavar="SECONDS",
                   help="refresh every SECONDS (default 2) until Ctrl-C")
    p.add_argument("--json", action="store_true", help="print the raw /status JSON")
    p.set_defaults(run=_lazy_command("status"))

    p = sub.add_parser("run", help="broker + learner + self-play as local processes (make run)",
                       description="Start the whole pipeline on this machine with data under ./data, print a progress line "
                                   "every few seconds, stop everything cleanly on Ctrl-C; a second run resumes.")
    p.add_argument("--config", default=os.environ.get("AZGO_CONFIG", "configs/azgo.yaml"), help="YAML config file")
    p.add_argument("--workers", type=int, default=None, help="self-play processes (default: run.selfplay_workers)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: until Ctrl-C)")
    p.set_defaults(run=_lazy_command("launcher"))


def add_evaluation(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("match", help="two engines play N games: score with interval, games as SGF (make match)",
                       description="Play A against B with colours alternated and print A's score with its Wilson "
                                   "interval and the Elo difference. Engines: random, gnugo[:LEVEL], a model file "
                                   "PATH.safetensors[:VISITS], or gtp:COMMAND LINE.")
    p.add_argument("a", metavar="A", help="first engine (black in games 1, 3, ...)")
    p.add_argument("b", metavar="B", help="second engine")
    p.add_argument("--games", type=_positive_int, default=20, help="games to play (default 20)")
    p.add_argument("--size", type=int, choices=range(coords.MIN_SIZE, coords.MAX_SIZE + 1), metavar="N",
                   help="board size (default: the models', else 9)")
    p.add_argument("--komi", type=_finite_float, default=7.5, help="komi (default 7.5)")
    p.add_argument("--visits", type=_positive_int, default=100, help="MCTS visits per move of a model without :VISITS")
    p.add_argument("--out", metavar="DIR", help="where the SGF files go (default data/matches/<time>-A-vs-B)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random player and the search")
    p.add_argument("--device", default="cpu", help="torch device for model engines")
    p.add_argument("--threads", type=_positive_int, default=1, help=THREADS_HELP)
    p.set_defaults(run=_lazy_command("match"))

    p = sub.add_parser("report", help="PNG plots and a markdown summary of a run (data/report/)",
                       description="Read the learner's metrics, the evaluator's ratings and results and the status "
                                   "history under DATA and write losses, Elo, throughput and worker plots plus report.md.")
    p.add_argument("--data", default="data", metavar="DIR", help="the run's data directory (default data)")
    p.add_argument("--out", metavar="DIR", help="output directory (default DATA/report)")
    p.set_defaults(run=_lazy_command("report"))

    p = sub.add_parser("strength", help="train for a wall time, then rate the last generation (make strength)",
                       description="Run the pipeline for MINUTES in OUT, then play the last generation against the "
                                   "opponents (distinct games), rate everything in one pool and write OUT/strength.md "
                                   "with the run's report.")
    p.add_argument("--config", default=os.environ.get("AZGO_CONFIG", "configs/azgo.yaml"), help="YAML config file")
    p.add_argument("--minutes", type=_finite_float, default=60.0, help="training wall time (default 60)")
    p.add_argument("--out", required=True, metavar="DIR", help="where the run, the matches and strength.md go")
    p.add_argument("--games", type=_positive_int, default=40, help="games per opponent (default 40)")
    p.add_argument("--visits", type=_positive_int, default=100, help="visits per move of the last generation (default 100)")
    p.add_argument("--opponents", default="random,gnugo:1,gnugo:10", help="engine specs, comma-separated")
    p.add_argument("--seed", type=int, default=0, help="seed of the matches' openings and engines")
    p.set_defaults(run=_lazy_command("strength"))


def add_deploy(sub: argparse._SubParsersAction) -> None:
    """deploy, undeploy, doctor, restart, logs: remote self-play hosts; their options live beside them."""
    from .deploy.cli import add_parsers

    add_parsers(sub, _lazy_command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="azgo", description="azgo: distributed AlphaZero for Go")
    parser.add_argument("--version", action="version", version=f"azgo {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (repeatable)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_gtp(sub)
    add_config(sub)
    add_services(sub)
    add_evaluation(sub)
    add_deploy(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.INFO - 10 * min(args.verbose, 1)
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
