"""``make bench-gpu``: on this machine (no GPU) it says so and exits 0 without figures; its
harness, run on the CPU in miniature, measures every row it promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from procs import clean_environ

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "bench_gpu.py"


def test_without_a_gpu_it_says_so_and_writes_no_figures(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run(["make", "-s", "bench-gpu"], cwd=ROOT, env=clean_environ(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no CUDA device on this machine" in done.stdout
    direct = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], env=clean_environ(), capture_output=True,
                            text=True, timeout=300)
    assert direct.returncode == 0 and "no figures" in direct.stdout and not out.exists()


def test_the_harness_measures_every_row_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    args = ["--device", "cpu", "--sizes", "5,7", "--nets", "1x8,2x16", "--batches", "4,16", "--games", "8",
            "--seconds", "0.2", "--search-threads", "1", "--out", str(out)]
    done = subprocess.run([sys.executable, str(SCRIPT), *args], env=clean_environ(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert [(r["board"], r["net"]) for r in result["rows"]] == [(5, "1x8"), (5, "2x16"), (7, "1x8"), (7, "2x16")]
    for row in result["rows"]:
        assert set(row["nn_evals_per_s"]) == {"fp32_4", "fp32_16", "bf16_4", "bf16_16"}
        assert all(v > 0 for v in row["nn_evals_per_s"].values())
        assert row["selfplay_sims_per_s"] > 0
        assert row["selfplay_vs_nn"] == row["selfplay_sims_per_s"] / row["nn_evals_per_s_runner_batch"]
    assert result["machine"]["device"] == "cpu"
