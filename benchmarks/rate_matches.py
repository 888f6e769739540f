"""Rate the players of several `azgo match` runs in one Bradley-Terry pool (random = Elo 0).

    python benchmarks/rate_matches.py LABEL_A:LABEL_B:DIR [LABEL_A:LABEL_B:DIR ...]

Each argument names a match directory (``azgo match A B --out DIR``) and the labels of its two
engines, A first (A had black in games 1, 3, ...). Labels make players of different runs
distinct even when their models carry the same generation number. Prints each pairing's
score with its Wilson interval, then the pooled ratings with 95% intervals (the tables of
``azgo strength``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from azgo_tools.strength import match_games, pool_tables


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("matches", nargs="+", help="LABEL_A:LABEL_B:DIR")
    ap.add_argument("--anchor", default="random")
    args = ap.parse_args()
    results = []
    for spec in args.matches:
        a, b, folder = spec.split(":", 2)
        results += match_games(Path(folder), a, b)
    print("\n".join(pool_tables(results, args.anchor)))


if __name__ == "__main__":
    main()
