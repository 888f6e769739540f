"""`azgo report` / `make report`: PNG plots and a one-page markdown summary of a run.

Reads, under the data directory (``data/`` by default; every input is optional):

====================================  ==========================================================
learner/metrics.jsonl                 the learner's reports: step, losses, samples/s, generation,
                                      training health (recent games, per generation, warnings)
evaluator/ratings.json                the evaluator's latest Elo fit (players with intervals)
evaluator/results.jsonl               every evaluation game (the anchor match table)
evaluator/status.jsonl                the broker's /status every 30 s: games/s, NN evals/s, workers
====================================  ==========================================================

and writes into ``<data>/report/``: ``losses.png``, ``elo.png``, ``throughput.png``,
``workers.png``, ``health.png`` (each when its data exists) and ``report.md`` (the figures'
summary, the latest ratings, the training health per generation, the results against the
anchors, and the images).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections import defaultdict
from pathlib import Path

LATEST_ROWS = 12  # generations in the report's Elo table


def read_jsonl(path: Path) -> list[dict]:
    """Whole JSON lines of ``path`` (a torn last line is skipped); [] when it is missing."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _fmt_elo(p: dict) -> str:
    return f"{p['elo']:+.0f} ({p['low']:+.0f} .. {p['high']:+.0f})" if p.get("elo") is not None else "unrated"


def share_text(v) -> str:
    """A share as a whole percentage ('-' when unknown)."""
    return "-" if v is None else f"{v:.0%}"


def count_text(v) -> str:
    """A mean count (moves) rounded ('-' when unknown)."""
    return "-" if v is None else f"{v:.0f}"


def _fmt(x) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) else "-"


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def summary_lines(learner: list[dict], status: list[dict], ratings: dict) -> list[str]:
    """The run in a few bullet points."""
    lines = []
    times = [r["time"] for r in learner + status if isinstance(r.get("time"), (int, float))]
    if times:
        lines.append(f"- span of the data: {_duration(max(times) - min(times))}")
    if status:
        last = status[-1]
        lines.append(f"- games stored: {last.get('games', 0):,}; positions: {last.get('positions', 0):,}; "
                     f"model generation {last.get('generation')}")
    if learner:
        last = learner[-1]
        lines.append(f"- learner: step {last.get('step', 0):,}, generation {last.get('generation')}, "
                     f"loss {_fmt(last.get('loss_total'))} (policy {_fmt(last.get('loss_policy'))}, "
                     f"value {_fmt(last.get('loss_value'))})")
    players = ratings.get("players", [])
    gens = sorted((p for p in players if p.get("generation") is not None and p.get("elo") is not None),
                  key=lambda p: p["generation"])
    if gens:
        best = max(gens, key=lambda p: p["elo"])
        lines.append(f"- Elo ({ratings.get('anchor')} = 0, {ratings.get('confidence', 0.95):.0%} intervals): latest "
                     f"generation {gens[-1]['generation']} {_fmt_elo(gens[-1])}; strongest generation "
                     f"{best['generation']} {_fmt_elo(best)}")
        lines.append(f"- evaluation: {ratings.get('games_total', 0):,} games in {ratings.get('matches_total', 0):,} matches, "
                     f"{len(ratings.get('evaluated', []))} generations evaluated")
    if ratings.get("best_generation", -1) >= 0:
        lines.append(f"- gating: best generation {ratings['best_generation']}")
    return lines or ["- no data found (run `make run` first)"]


def ratings_table(ratings: dict) -> list[str]:
    players = ratings.get("players", [])
    gens = sorted((p for p in players if p.get("generation") is not None), key=lambda p: p["generation"])[-LATEST_ROWS:]
    anchors = [p for p in players if p.get("generation") is None]
    if not gens and not anchors:
        return []
    rows = ["| player | Elo (interval) | games | score |", "|---|---|---:|---:|"]
    for p in [*reversed(gens), *anchors]:
        score = "-" if p.get("score") is None else f"{p['score']:.2f}"
        rows.append(f"| {p['player']} | {_fmt_elo(p)} | {p.get('games', 0)} | {score} |")
    return rows


def health_table(learner: list[dict]) -> list[str]:
    """The training health of the newest generations, from the last learner report that has it."""
    last = next((r for r in reversed(learner) if r.get("health_by_generation")), None)
    if last is None:
        return []
    rows = ["| generation | games | black wins | resigned | moves | white passes first | first pass at | false resignations |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for h in last["health_by_generation"][-LATEST_ROWS:]:
        rows.append(f"| {h['generation']:06d} | {h.get('games', 0)} | {share_text(h.get('black_win_share'))} | "
                    f"{share_text(h.get('resigned_share'))} | {count_text(h.get('mean_moves'))} | "
                    f"{share_text(h.get('white_passes_first_share'))} | {count_text(h.get('first_pass_move'))} | "
                    f"{share_text(h.get('false_resignation_rate'))} |")
    return rows + [""] + [f"**Warning**: {w}" for w in last.get("health_warnings") or []]


def anchor_table(results: list[dict]) -> list[str]:
    """Each evaluated generation's wins-draws-losses against the anchors (random, GNU Go)."""
    table: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    anchors = sorted({r["opponent"] for r in results if not str(r.get("opponent", "")).isdigit()})
    for r in results:
        if r.get("opponent") in anchors:
            table[r["subject"]][r["opponent"]].append(float(r["subject_points"]))
    if not table:
        return []
    rows = ["| generation | " + " | ".join(anchors) + " |", "|---|" + "---:|" * len(anchors)]
    for subject in sorted(table)[-LATEST_ROWS:]:
        cells = []
        for a in anchors:
            pts = table[subject][a]
            cells.append(f"{pts.count(1.0)}-{pts.count(0.5)}-{pts.count(0.0)}" if pts else "")
        rows.append(f"| {subject} | " + " | ".join(cells) + " |")
    return rows


def write_report(data: Path, out: Path) -> dict[str, bool]:
    """Draw the figures and write report.md into ``out``; returns which figures were drawn."""
    from . import plots  # matplotlib: imported only here

    learner = read_jsonl(data / "learner" / "metrics.jsonl")
    status = read_jsonl(data / "evaluator" / "status.jsonl")
    results = read_jsonl(data / "evaluator" / "results.jsonl")
    ratings = read_json(data / "evaluator" / "ratings.json")
    out.mkdir(parents=True, exist_ok=True)
    drawn = {
        "losses.png": plots.losses(learner, out / "losses.png"),
        "elo.png": plots.elo(ratings.get("players", []), ratings.get("anchor", "random"), out / "elo.png"),
        "throughput.png": plots.throughput(status, learner, out / "throughput.png"),
        "workers.png": plots.workers(status, out / "workers.png"),
        "health.png": plots.health(learner, out / "health.png"),
    }
    md = ["# azgo run report", "", f"Data: `{data}`; written {datetime.datetime.now():%Y-%m-%d %H:%M}.", "",
          *summary_lines(learner, status, ratings), ""]
    for title, lines in (("Ratings (newest generations, then anchors)", ratings_table(ratings)),
                         ("Training health by generation", health_table(learner)),
                         ("Against the anchors (wins-draws-losses)", anchor_table(results))):
        if lines:
            md += [f"## {title}", "", *lines, ""]
    md += ["## Figures", ""]
    captions = {"losses.png": "Training loss", "elo.png": "Elo by generation", "throughput.png": "Throughput",
                "workers.png": "Self-play workers", "health.png": "Training health"}
    for name, ok in drawn.items():
        md.append(f"![{captions[name]}]({name})" if ok else f"- {captions[name]}: no data yet")
        md.append("")
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    return drawn


def main(args: argparse.Namespace) -> int:
    data = Path(args.data)
    if not data.is_dir():
        print(f"error: data directory {data} not found (run `make run` first, or pass --data DIR)", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else data / "report"
    drawn = write_report(data, out)
    for name, ok in drawn.items():
        print(f"{out / name}" if ok else f"{name}: no data yet")
    print(out / "report.md")
    return 0
