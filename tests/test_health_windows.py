"""``benchmarks/health_windows.py``: a stopped run's game store summarised by window of received time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from broker_helpers import game

from azgo_broker.store import GameStore
from azgo_core.protocol import BatchHeader
from azgo_core.records import encode_batch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "health_windows.py"


def test_games_fall_in_the_window_of_their_batch(tmp_path):
    store = GameStore(tmp_path / "games", fsync=False)
    black_wins = [game([0, 1, 2]), game([3, 4, 5])]  # white resigns after an odd count of moves
    white_wins = [game([0, 1])]
    for batch_id, records, received in (("b1", black_wins, 1000.0), ("b2", white_wins, 1000.0 + 11 * 60)):
        header = BatchHeader(batch_id=batch_id, worker_id="w", games=len(records),
                             positions=sum(r.num_moves for r in records), generations=[0])
        store.append(header, encode_batch(records), received=received)
    store.commit()
    store.close()
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "games"), "--minutes", "10"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| 0-") or line.startswith("| 10-")]
    assert rows == ["| 0-10 | 2 | 100% | 100% | 3 | - | - |", "| 10-20 | 1 | 0% | 100% | 2 | - | - |"]
    empty = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "none")], capture_output=True, text=True,
                           timeout=60)
    assert empty.returncode == 2 and "no stored batches" in empty.stderr
