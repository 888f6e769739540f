"""Rate the players of several `azgo match` runs in one Bradley-Terry pool (random = Elo 0).

    python benchmarks/rate_matches.py LABEL_A:LABEL_B:DIR [LABEL_A:LABEL_B:DIR ...]

Each argument names a match directory (``azgo match A B --out DIR``) and the labels of its two
engines, A first (A had black in games 1, 3, ...). Labels make players of different runs
distinct even when their models carry the same generation number. Prints each pairing's
score with its Wilson interval, then the pooled ratings with 95% intervals
(``azgo_core.rating.fit_ratings``, one virtual draw per pair).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from azgo_core.rating import fit_ratings, score_interval


def games(spec: str) -> list[tuple[str, str, float]]:
    """(A, B, A's points) for every game of one match directory."""
    a, b, folder = spec.split(":", 2)
    rows = [json.loads(line) for line in (Path(folder) / "results.jsonl").read_text().splitlines() if line.strip()]
    out = []
    for row in rows:
        a_black = row["game"] % 2 == 1
        winner = row["result"][:1]
        points = 0.5 if winner == "0" else float((winner == "B") == a_black)
        out.append((a, b, points))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("matches", nargs="+", help="LABEL_A:LABEL_B:DIR")
    ap.add_argument("--anchor", default="random")
    args = ap.parse_args()
    results = [g for spec in args.matches for g in games(spec)]
    pairs: dict[tuple[str, str], list[float]] = defaultdict(list)
    for a, b, p in results:
        pairs[(a, b)].append(p)
    print("| A | B | A's score | 95% interval | games |\n|---|---|---:|---|---:|")
    for (a, b), pts in pairs.items():
        wins, draws = pts.count(1.0), pts.count(0.5)
        score, low, high = score_interval(wins, draws, len(pts) - wins - draws)
        print(f"| {a} | {b} | {score:.3f} ({wins}-{draws}-{len(pts) - wins - draws}) | {low:.2f} .. {high:.2f} | {len(pts)} |")
    fit = fit_ratings(results, anchor=args.anchor)
    print(f"\n| player | Elo ({args.anchor} = 0) | 95% interval | games |\n|---|---:|---|---:|")
    for p in sorted(fit.players, key=lambda p: -p.elo if p.elo == p.elo else 0):
        print(f"| {p.name} | {p.elo:+.0f} | {p.low:+.0f} .. {p.high:+.0f} | {int(p.games)} |")


if __name__ == "__main__":
    main()
