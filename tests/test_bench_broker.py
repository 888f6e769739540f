"""``make bench-broker`` in miniature: the benchmark runs end to end and its figures add up.

A few simulated workers on 5x5 for a few seconds (the real run: 64 workers, 9x9, 20 s); the
point is that the harness works against the real broker process, not the figures themselves.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from procs import clean_environ

from azgo_core.batchcheck import scan_batch
from azgo_core.records import GameRecord, encode_batch

ROOT = Path(__file__).resolve().parent.parent
KEYS = ("batches_per_s", "games_per_s", "ack_p50_ms", "ack_p99_ms", "samples_served_per_s")


def test_bench_broker_runs_and_reports(tmp_path):
    # the broker's batch check compiled here first (numba's disk cache): its warm-up second is no compile
    one = GameRecord.from_visits(5, 7.5, [12], [([12], [1])], winner=1, resigned=True)  # white resigned
    assert scan_batch(encode_batch([one]), 5, 1, 1 << 20) is not None
    out = tmp_path / "broker.json"
    args = ["--workers", "4", "--games", "8", "--board", "5", "--pool", "16", "--seconds", "3", "--capacity-seconds", "2",
            "--warmup", "1", "--rate", "20", "--generators", "1", "--cache", str(tmp_path), "--out", str(out)]
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_broker.py"), *args], env=clean_environ(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert all(result[k] is not None for k in KEYS), result
    rate, capacity = result["rate_phase"], result["capacity_phase"]
    assert 5 <= rate["batches_per_s"] <= 40  # about the 20 offered (more while a backlog is caught up)
    assert capacity["batches"] > 0 and capacity["broker_cpu_ms_per_batch"] > 0
    assert abs(result["games_per_s"] - rate["batches"] * 8 / rate["seconds"]) < 0.1
    assert result["samples_served_per_s"] > 0 and result["broker"]["errors"] == {}
    stored = result["broker"]["stored"]
    assert stored["rejected"] == 0 and stored["duplicates"] == 0 and stored["games"] == 8 * stored["batches"]
    assert result["games"]["board_size"] == 5 and result["broker"]["fsync"] is True
    assert set(result["targets"]) == {"batches_per_s", "ack_p99_ms", "samples_served_per_s"}
    # the run is made with 1 and then 2 validation threads (broker.validation_threads), each rate reported
    assert result["validators"] == [1, 2] and result["broker_cpu_ms_per_batch"] == rate["broker_cpu_ms_per_batch"]
    assert result["batches_per_s_1_validator"] == capacity["batches_per_s"] > 0
    assert result["batches_per_s_2_validators"] > 0 and result["broker_cpu_ms_per_batch_2_validators"] > 0
    assert "2 validation thread(s): " in done.stdout
    # the summary prints each target once, with the figure and the verdict of the JSON
    for k, t in result["targets"].items():
        below = k == "ack_p99_ms"
        assert t["met"] == (t["value"] is not None and (t["value"] < t["target"] if below else t["value"] >= t["target"]))
        verdict = "met" if t["met"] else "MISSED"
        line = f"  target {k} {'<' if below else '>='} {t['target']:g}: {t['value']} {verdict}"
        assert done.stdout.count(f"  target {k} ") == 1 and line in done.stdout.splitlines(), (line, done.stdout)
