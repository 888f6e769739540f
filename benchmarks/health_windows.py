"""Self-play health by window of wall time, from a finished run's game store (a Markdown table).

    python benchmarks/health_windows.py RUN_DATA_DIR/broker/games [--minutes 10] [--resign-at -0.9]

Each stored batch is placed by the time the broker received it; its games are summarised with
``azgo_core.health`` (the same figures the learner reports per generation): black's share of
the decided games, the resigned share, the mean length, and which colour passed first and when.
Run it on a stopped run only: opening the store recovers (truncates) a torn tail as a broker
restart would.
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict

from azgo_broker.store import GameStore
from azgo_core.health import game_health, summarise
from azgo_core.records import decode_batch


def percent(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.0%}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("games_dir", help="the broker's game store (DATA_DIR/broker/games)")
    parser.add_argument("--minutes", type=float, default=10.0, help="window length (default 10)")
    parser.add_argument("--resign-at", type=float, default=-0.9,
                        help="root value below which a played-out game counts as a would-be resignation")
    args = parser.parse_args()
    store = GameStore(args.games_dir, fsync=False)
    if not store.entries:
        parser.error(f"{args.games_dir}: no stored batches")
    start = store.entries[0].received
    windows = defaultdict(list)
    for entry in store.entries:
        for record in decode_batch(store.read_blob(entry)):
            size = record.board_size
            windows[int((entry.received - start) // (args.minutes * 60))].append(
                game_health(record, args.resign_at, size * size // 4))
    store.close()
    print("| minutes | games | black wins | resigned | mean moves | white passes first | first pass at move |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for k in sorted(windows):
        h = summarise(windows[k])
        at = "-" if math.isnan(h.first_pass_move) else f"{h.first_pass_move:.0f}"
        print(f"| {k * args.minutes:g}-{(k + 1) * args.minutes:g} | {h.games:,} | {percent(h.black_win_share)} | "
              f"{percent(h.resigned_share)} | {h.mean_moves:.0f} | {percent(h.white_passes_first_share)} | {at} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
