"""``make bench-core``'s reference for legal masks: OpenSpiel's C++ Go replays the benchmark's
random games move for move, and agrees with our rules on every legal move but superko (which
it checks only as the simple ko). Run as the benchmark runs (a script), so the compiled
kernels it caches are the ones ``make bench-core`` loads."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_core.py"


def test_openspiel_replays_the_benchmark_games_and_agrees_on_legal_moves():
    done = subprocess.run([sys.executable, str(SCRIPT), "--check-rules", "7", "--games", "40"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"40 random 7x7 games, (\d+) positions: OpenSpiel accepted every move; (\d+) moves refused for "
                      r"superko by us only; (\d+) games ended on two passes in both", done.stdout)
    assert found, done.stdout
    positions, superko, ended = map(int, found.groups())
    assert positions > 20 * 40 and superko < positions // 100 and ended > 20
    assert "disagreement" not in done.stdout
