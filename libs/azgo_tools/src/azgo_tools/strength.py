"""`azgo strength` / `make strength`: train for a wall time, then measure the player it made.

One command for a reference run (the dated runs in docs/results/ come from it):

1. ``azgo run --config CONFIG --duration MINUTES*60`` in ``OUT`` (the config's relative data
   dirs land under ``OUT``, e.g. ``OUT/data/broker``), its output in ``OUT/run.log``;
2. the last generation plays ``--games`` distinct games (``azgo match``: openings, both
   colours, a seed per game) at ``--visits`` against each ``--opponents`` engine (default the
   random player, GNU Go level 1 and level 10), two matches at a time, in ``OUT/matches/``;
3. every result rated in one Bradley-Terry pool, the random player at 0;
4. ``azgo report`` on the run (losses, Elo by generation over time, training health, ...);
5. ``OUT/strength.md``: the machine and its load average before, after training and at the
   end, the run's figures, the match table with 95% intervals, the pool and the report.

A figure from a loaded machine is not a reference figure: the page prints the load averages
so that a reader can tell.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import subprocess
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .report import count_text, share_text


def match_games(folder: Path, a: str, b: str) -> list[tuple[str, str, float]]:
    """(a, b, a's points) for every game of an ``azgo match`` folder (A black in games 1, 3, ...)."""
    out = []
    for line in (folder / "results.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        winner = row["result"][:1]
        a_black = row["game"] % 2 == 1
        out.append((a, b, 0.5 if winner == "0" else float((winner == "B") == a_black)))
    return out


def pool_tables(results: list[tuple[str, str, float]], anchor: str = "random") -> list[str]:
    """Markdown: each pairing's score with its Wilson interval, then the pooled ratings."""
    from azgo_core.rating import fit_ratings, score_interval

    pairs: dict[tuple[str, str], list[float]] = defaultdict(list)
    for a, b, p in results:
        pairs[(a, b)].append(p)
    lines = ["| A | B | A's score (W-D-L) | 95% interval | games |", "|---|---|---:|---|---:|"]
    for (a, b), pts in pairs.items():
        wins, draws = pts.count(1.0), pts.count(0.5)
        score, low, high = score_interval(wins, draws, len(pts) - wins - draws)
        lines.append(f"| {a} | {b} | {score:.3f} ({wins}-{draws}-{len(pts) - wins - draws}) | {low:.2f} .. {high:.2f} "
                     f"| {len(pts)} |")
    names = {n for a, b, _ in results for n in (a, b)}
    fit = fit_ratings(results, anchor=anchor if anchor in names else None)
    lines += ["", f"| player | Elo ({fit.anchor} = 0) | 95% interval | games |", "|---|---:|---|---:|"]
    for p in sorted(fit.players, key=lambda p: -p.elo if p.elo == p.elo else float("inf")):
        lines.append(f"| {p.name} | {p.elo:+.0f} | {p.low:+.0f} .. {p.high:+.0f} | {int(p.games)} |")
    return lines


def _azgo(*args: str, cwd: Path, log: Path) -> int:
    with open(log, "w", encoding="utf-8") as out:
        return subprocess.run([sys.executable, "-m", "azgo_tools.cli", *args], cwd=cwd, stdout=out,
                              stderr=subprocess.STDOUT).returncode


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(args: argparse.Namespace) -> int:
    from azgo_core.config import ConfigError, load_settings

    config = Path(args.config).resolve()
    try:
        settings = load_settings(str(config))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    models = out / settings.broker.data_dir / "models"  # a relative data dir lands under OUT
    loads = {"start": _load()}
    print(f"training {args.minutes:g} min on {config.name} in {out} (load average {loads['start']})", flush=True)
    if _azgo("run", "--config", str(config), "--duration", str(args.minutes * 60), cwd=out, log=out / "run.log"):
        print(f"error: azgo run failed (see {out / 'run.log'})", file=sys.stderr)
        return 1
    loads["after training"] = _load()
    last = sorted(models.glob("*.safetensors"))
    if not last:
        print(f"error: no model in {models} (see {out / 'run.log'})", file=sys.stderr)
        return 1
    model, me = last[-1], f"azgo-{last[-1].stem}"
    opponents = [o for o in args.opponents.split(",") if o]
    print(f"matches of {model.name}: {args.games} games at {args.visits} visits against {', '.join(opponents)}", flush=True)

    def play(item: tuple[int, str]) -> tuple[str, int]:
        i, opp = item
        folder = out / "matches" / opp.replace(":", "-")
        code = _azgo("match", f"{model}:{args.visits}", opp, "--games", str(args.games), "--seed", str(args.seed + i),
                     "--komi", f"{settings.board.komi:g}", "--out", str(folder), cwd=out, log=folder.with_suffix(".log"))
        return opp, code

    (out / "matches").mkdir(exist_ok=True)
    with ThreadPoolExecutor(max_workers=2) as pool:  # two at a time: one core each
        codes = dict(pool.map(play, enumerate(opponents)))
    failed = [o for o, c in codes.items() if c]
    results = [g for o in opponents if o not in failed
               for g in match_games(out / "matches" / o.replace(":", "-"), me, _name(o))]
    loads["end"] = _load()
    data = (out / settings.broker.data_dir).parent  # the run's data dir, as azgo run lays it out
    _azgo("report", "--data", str(data), "--out", str(out / "report"), cwd=out, log=out / "report.log")
    page = strength_page(args, config, settings, model, results, loads, out, failed)
    (out / "strength.md").write_text("\n".join(page) + "\n", encoding="utf-8")
    print(out / "strength.md")
    return 1 if failed else 0


def _name(spec: str) -> str:
    """The opponent's name as matches print it (gnugo:10 -> gnugo-l10)."""
    if spec.startswith("gnugo"):
        return f"gnugo-l{spec.partition(':')[2] or '1'}"
    return spec


def cpu_split(run_log: Path) -> str | None:
    """The run's whole CPU split, from the launcher's last 'CPU over the run:' line."""
    try:
        lines = [ln for ln in run_log.read_text(errors="replace").splitlines() if "CPU over the run: " in ln]
    except OSError:
        return None
    return lines[-1].partition("CPU over the run: ")[2].removeprefix("cpu ") if lines else None


def elo_per_cpu_hour(results, me: str, split: str, minutes: float) -> float | None:
    """The pooled Elo of ``me`` (random = 0) divided by the CPU-hours of the training run, from
    the split's percents of one core (``cpu self-play 104% learner 18% ... of 200%``)."""
    from azgo_core.rating import fit_ratings

    percents = [float(x) for x in re.findall(r"(\d+(?:\.\d+)?)% ", split + " ")][:-1]  # the last is the machine's
    cpu_hours = sum(percents) / 100 * minutes / 60
    names = {n for a, b, _ in results for n in (a, b)}
    if not cpu_hours or me not in names or "random" not in names:
        return None
    elo = fit_ratings(results, anchor="random").elo(me)
    return elo / cpu_hours if math.isfinite(elo) else None


def strength_page(args, config: Path, settings, model: Path, results, loads: dict, out: Path, failed: list[str]) -> list[str]:
    learner = []
    metrics = out / settings.learner.data_dir / "metrics.jsonl"
    if metrics.exists():
        learner = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    last = learner[-1] if learner else {}
    health = last.get("health") or {}
    lines = [f"# Strength: {config.name}, {args.minutes:g} minutes", "",
             f"Written {datetime.datetime.now():%Y-%m-%d %H:%M} by `azgo strength --config {config.name} "
             f"--minutes {args.minutes:g} --games {args.games} --visits {args.visits} --seed {args.seed}`.", "",
             f"- machine: {os.cpu_count()} cpus; load average (1, 5, 15 min) at the start {loads['start']}, after "
             f"training {loads['after training']}, at the end {loads['end']}",
             f"- board {settings.board.size}x{settings.board.size}, komi {settings.board.komi:g}; net "
             f"{settings.model.blocks}x{settings.model.channels} (auxiliary heads {'on' if settings.model.aux_heads else 'off'}, "
             f"global pooling {'on' if settings.model.global_pooling else 'off'}); search {settings.search.algorithm} "
             f"{settings.search.visits}/{settings.search.cheap_visits} visits",
             f"- last generation {model.stem}; learner step {last.get('step', 0):,}, samples trained "
             f"{last.get('samples_trained', 0):,}, positions seen {last.get('positions_seen', 0):,}"]
    split = cpu_split(out / "run.log")
    if split:
        lines.append(f"- where the CPU went during training (percent of one core): {split}")
        per_hour = elo_per_cpu_hour(results, f"azgo-{model.stem}", split, args.minutes)
        if per_hour is not None:
            lines.append(f"- Elo per CPU-hour: {per_hour:+.0f} (the last generation's Elo above the random player, "
                         "over the CPU-hours all the services used in training)")
    if health:
        lines.append(f"- training health of the last {health.get('games', 0)} games: black wins "
                     f"{share_text(health.get('black_win_share'))}, resigned {share_text(health.get('resigned_share'))}, "
                     f"{count_text(health.get('mean_moves'))} moves on average, white passes first "
                     f"{share_text(health.get('white_passes_first_share'))}")
    for w in last.get("health_warnings") or []:
        lines.append(f"- **warning**: {w}")
    lines += ["", f"## The last generation at {args.visits} visits, {args.games} distinct games per opponent", ""]
    lines += pool_tables(results) if results else ["no match finished"]
    if failed:
        lines += ["", f"Failed matches (see their logs in matches/): {', '.join(failed)}"]
    lines += ["", "## The run", "", "See [report/report.md](report/report.md): losses, Elo by generation, "
              "throughput, workers and training health.", ""]
    for name, caption in (("elo.png", "Elo by generation"), ("health.png", "Training health"), ("losses.png", "Losses")):
        if (out / "report" / name).exists():
            lines += [f"![{caption}](report/{name})", ""]
    return lines
