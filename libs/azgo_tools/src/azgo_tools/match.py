"""`azgo match A B` / `make match A=... B=...`: two engines play N games; the score with its interval.

    $ azgo match gnugo random --games 20 --size 7
    gnugo-l1 vs random: 20 games on 7x7, komi 7.5 (gnugo-l1 black in games 1, 3, ...)
    gnugo-l1: 20 wins, 0 draws, 0 losses; score 1.000 (95% interval 0.839 .. 1.000)
    Elo gnugo-l1 - random: +inf (95% interval +286 .. +inf)
    SGF: data/matches/20260102-101500-gnugo-l1-vs-random/game-001.sgf .. game-020.sgf

Engines are specs (``azgo_runtime.engines``): ``random``, ``gnugo[:LEVEL]``, a model file
``data/broker/models/000012.safetensors[:VISITS]`` or ``gtp:COMMAND``. Colours alternate (A
is black in the odd-numbered games), the referee scores by Tromp-Taylor, every game is
written as SGF as soon as it ends, and a rich progress bar shows games, the running score
and the move of the game in progress. Ctrl-C stops after printing what was played.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import re
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from azgo_core.match import MatchGame, MatchResult, play_match
from azgo_core.rating import elo_difference
from azgo_runtime.engines import SpecError, make_player, model_board_size, parse_spec
from azgo_runtime.gtp_player import GtpEngineError

log = logging.getLogger("azgo.match")

DEFAULT_SIZE = 9


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40]


def _elo(x: float) -> str:
    return f"{x:+.0f}" if abs(x) != float("inf") else ("+inf" if x > 0 else "-inf")


def summary(result: MatchResult, confidence: float = 0.95) -> list[str]:
    """The score lines printed at the end (and for a partial match)."""
    if not result.games:
        return [f"{result.a} vs {result.b}: no game finished"]
    score, low, high = result.score(confidence)
    pct = f"{confidence:.0%}"
    return [
        f"{result.a}: {result.wins} wins, {result.draws} draws, {result.losses} losses in {len(result.games)} games; "
        f"score {score:.3f} ({pct} interval {low:.3f} .. {high:.3f})",
        f"Elo {result.a} - {result.b}: {_elo(elo_difference(score))} "
        f"({pct} interval {_elo(elo_difference(low))} .. {_elo(elo_difference(high))})",
    ]


def board_size(requested: int | None, specs) -> int:
    """--size, else the models' board size (they must agree), else 9."""
    sizes = {s for s in (model_board_size(spec) for spec in specs) if s is not None}
    if requested is not None:
        return requested
    if len(sizes) > 1:
        raise SpecError(f"the two models play different board sizes: {sorted(sizes)}")
    return sizes.pop() if sizes else DEFAULT_SIZE


class GameWriter:
    """Writes each finished game to out/game-NNN.sgf and a line to out/results.jsonl."""

    def __init__(self, out: Path, about: str):
        self.out, self.about = out, about
        out.mkdir(parents=True, exist_ok=True)
        self.paths: list[Path] = []

    def __call__(self, i: int, game: MatchGame, a_black: bool) -> None:
        path = self.out / f"game-{i + 1:03d}.sgf"
        path.write_text(game.to_sgf(about=self.about, date=datetime.date.today()), encoding="utf-8")
        self.paths.append(path)
        row = {"game": i + 1, "black": game.black, "white": game.white, "result": game.result_string(),
               "reason": game.reason, "moves": len(game.moves), "sgf": path.name}
        with open(self.out / "results.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


def run_match(args: argparse.Namespace, console: Console) -> int:
    specs = [parse_spec(args.a), parse_spec(args.b)]
    size = board_size(args.size, specs)
    if any(s.kind == "model" for s in specs):  # torch only for a network: `gnugo vs random` starts at once
        import torch

        torch.set_num_threads(getattr(args, "threads", 1))
    a = make_player(specs[0], size=size, default_visits=args.visits, seed=args.seed, device=args.device)
    try:
        b = make_player(specs[1], size=size, default_visits=args.visits, seed=args.seed + 1, device=args.device)
    except Exception:
        a.close()
        raise
    if a.name == b.name:  # the same engine twice: tell the two apart in results and SGF
        a.name, b.name = f"{a.name}-A", f"{b.name}-B"
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("data/matches") / f"{stamp}-{_slug(a.name)}-vs-{_slug(b.name)}"
    writer = GameWriter(out, f"azgo match {a.name} vs {b.name}, {size}x{size} komi {args.komi:g}")
    console.print(f"{a.name} vs {b.name}: {args.games} games on {size}x{size}, komi {args.komi:g} "
                  f"({a.name} black in games 1, 3, ...); SGF in {out}")
    result = MatchResult(a.name, b.name)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[score]}"),
               TextColumn("{task.fields[move]}"), TimeElapsedColumn(), TimeRemainingColumn())
    status = 0
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(f"{a.name} vs {b.name}", total=args.games, score="", move="")

            def on_game(i: int, game: MatchGame, a_black: bool) -> None:
                writer(i, game, a_black)
                result.add(game, a_black)
                progress.update(task, advance=1, move="",
                                score=f"{a.name} {result.wins}-{result.draws}-{result.losses}")

            def on_move(position) -> None:
                progress.update(task, move=f"move {position.n_moves}")

            # distinct games: openings and engine seeds drawn from --seed
            play_match(a, b, args.games, size, args.komi, on_game=on_game, on_move=on_move, seed=args.seed)
    except GtpEngineError as e:
        console.print(f"[red]error: {e}[/red] (the games finished so far are kept)")
        status = 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        status = 130
    finally:
        a.close()
        b.close()
    for line in summary(result):
        console.print(line, highlight=False)
    if writer.paths:
        console.print(f"SGF: {writer.paths[0]} .. {writer.paths[-1].name} ({len(writer.paths)} files)", highlight=False)
    return status


def main(args: argparse.Namespace) -> int:
    console = Console(stderr=False) if sys.stdout.isatty() else Console(width=200)
    try:
        return run_match(args, console)
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except GtpEngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
