"""Engine specs for matches (``azgo match``, ``make match``, the evaluator) and the players they make.

=====================================  ======================================================
spec                                   player
=====================================  ======================================================
``random``                             ``RandomPlayer``: uniform legal moves, never filling its
                                       own eyes (the Elo scale's zero)
``gnugo`` / ``gnugo:LEVEL``            GNU Go over GTP (level 0-10, default 1) with Chinese
                                       (area) rules, positional superko, capturing all dead
                                       stones before it passes, as Tromp-Taylor scoring needs
``PATH.safetensors[:VISITS]``          our network (a model file) with MCTS, no noise, the most
                                       visited move (``MctsPlayer``)
``gtp:COMMAND LINE``                   any GTP engine, e.g. ``gtp:leelaz -g -w net.gz``
=====================================  ======================================================

GNU Go is looked for at ``$AZGO_GNUGO``, then ``/usr/games/gnugo``, then on ``$PATH``.
Names (in results and SGF PB/PW): ``random``, ``gnugo-l1``, ``azgo-000012`` (the model's
generation), and a GTP engine's answer to ``name``.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from azgo_core.match import MatchPlayer, PositionPlayer, RandomPlayer

from .gtp_player import GtpPlayer

DEFAULT_GNUGO = "/usr/games/gnugo"
DEFAULT_GNUGO_LEVEL = 1
DEFAULT_VISITS = 100


class SpecError(ValueError):
    """An engine spec that names nothing playable; the message says what is wrong."""


@dataclass(frozen=True)
class EngineSpec:
    kind: str
    """'random', 'gnugo', 'model' or 'gtp'."""
    arg: str = ""
    """GNU Go's level, the model path or the GTP command line."""
    visits: int | None = None
    """Visits per move of a model (None: the caller's default)."""


def parse_spec(text: str) -> EngineSpec:
    """Parse an engine spec (see the module docstring); ``SpecError`` names the problem."""
    text = text.strip()
    if not text:
        raise SpecError("empty engine spec (try random, gnugo:1, a .safetensors file or gtp:COMMAND)")
    if text == "random":
        return EngineSpec("random")
    if text == "gnugo" or text.startswith("gnugo:"):
        level = text.partition(":")[2] or str(DEFAULT_GNUGO_LEVEL)
        if not level.isdigit() or not 0 <= int(level) <= 10:
            raise SpecError(f"{text!r}: the GNU Go level must be 0..10")
        return EngineSpec("gnugo", level)
    if text.startswith("gtp:"):
        command = text[4:].strip()
        if not command:
            raise SpecError(f"{text!r}: gtp: needs a command line, e.g. gtp:gnugo --mode gtp")
        return EngineSpec("gtp", command)
    path, _, visits = text.rpartition(":")
    if path and visits.isdigit():
        if int(visits) < 1:
            raise SpecError(f"{text!r}: visits must be at least 1")
        return EngineSpec("model", path, int(visits))
    if not Path(text).exists():
        raise SpecError(f"{text!r} is not random, gnugo[:LEVEL], gtp:COMMAND or an existing model file")
    return EngineSpec("model", text)


def find_gnugo(path: str | None = None) -> str:
    """The GNU Go binary: ``path``, ``$AZGO_GNUGO``, /usr/games/gnugo or ``gnugo`` on $PATH."""
    for candidate in (path, os.environ.get("AZGO_GNUGO"), DEFAULT_GNUGO, shutil.which("gnugo")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SpecError("GNU Go not found (looked at $AZGO_GNUGO, /usr/games/gnugo and $PATH): apt-get install gnugo, "
                    "or set AZGO_GNUGO")


def gnugo_argv(binary: str, level: int) -> list[str]:
    return [binary, "--mode", "gtp", "--level", str(level), "--chinese-rules", "--positional-superko", "--capture-all-dead"]


def gnugo_player(level: int, binary: str | None = None) -> GtpPlayer:
    return GtpPlayer(gnugo_argv(find_gnugo(binary), level), name=f"gnugo-l{level}", seed_command="set_random_seed")


def net_player(net, name: str, visits: int, device: str = "cpu", seed: int = 0) -> PositionPlayer:
    """MCTS over ``net`` (an ``AZNet``) as a match player: no noise, the most visited move."""
    from azgo_core.model import make_evaluator
    from azgo_core.search import MctsPlayer, SearchConfig

    config = SearchConfig(visits=visits, cheap_visits=visits, history=net.config.history)
    return PositionPlayer(MctsPlayer(make_evaluator(net, device=device), visits=visits, config=config, seed=seed), name)


def model_board_size(spec: EngineSpec) -> int | None:
    """The board size of a model spec's file (None for the other kinds); ``SpecError`` if unreadable."""
    if spec.kind != "model":
        return None
    return load_net(spec.arg)[1].board_size


def load_net(path: str):
    """(net, meta) of a model file; ``SpecError`` naming the file and the problem."""
    from azgo_core.model import ModelFileError, load_model

    try:
        return load_model(path)
    except OSError as e:
        raise SpecError(f"cannot read model {path}: {e.strerror or e}") from None
    except ModelFileError as e:
        raise SpecError(f"{path}: {e}") from None


def make_player(spec: EngineSpec, *, size: int, default_visits: int = DEFAULT_VISITS, seed: int = 0,
                device: str = "cpu", gnugo: str | None = None) -> MatchPlayer:
    """A match player for ``spec`` on a ``size`` board; ``SpecError`` if it cannot play there."""
    if spec.kind == "random":
        return RandomPlayer(seed)
    if spec.kind == "gnugo":
        return gnugo_player(int(spec.arg), gnugo)
    if spec.kind == "gtp":
        return GtpPlayer(shlex.split(spec.arg))
    net, meta = load_net(spec.arg)
    if meta.board_size != size:
        raise SpecError(f"{spec.arg} plays {meta.board_size}x{meta.board_size}, not {size}x{size}")
    return net_player(net, f"azgo-{meta.generation:06d}", spec.visits or default_visits, device, seed)
