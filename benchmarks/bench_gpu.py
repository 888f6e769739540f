"""make bench-gpu: what a GPU host's self-play can do, and what holds it back.

For each board (9x9, 19x19) and network (4x48, the default; 10x128, a GPU-sized one):

  nn_evals_per_s      the network alone at batch 256, 1024 and 4096, in fp32 and bf16
                      (make_evaluator: bf16 autocast and channels-last on CUDA, planes copied
                      from pinned memory without blocking)
  selfplay_sims_per_s the real self-play runner (SelfPlayRunner: the compiled search over
                      --games games on every core, overlap on) with the bf16 network
  selfplay_vs_nn      selfplay_sims_per_s / nn_evals_per_s at the runner's batch: 1.0 = the
                      network never waits for the search

On a machine without a CUDA device it says so and exits 0 without figures. ``--device cpu``
runs the same table on the CPU (small batches: the tests use it to check the harness).

    python benchmarks/bench_gpu.py [--out build/bench/gpu.json] [--seconds 3]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np


def timed_evals(evaluate, planes: np.ndarray, seconds: float) -> float:
    """Positions per second of ``evaluate`` on ``planes``, after two warm-up calls."""
    for _ in range(2):
        evaluate(planes)
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        evaluate(planes)
        done += len(planes)
    return done / elapsed


def selfplay_rate(evaluate, size: int, games: int, seconds: float, threads: int) -> float:
    """Leaf evaluations per second of a warmed-up runner of ``games`` games."""
    from azgo_core.params import SelfPlayConfig
    from azgo_core.selfplay import SelfPlayRunner

    cfg = SelfPlayConfig(board_size=size, parallel_games=games, batch_size=games, search_threads=threads,
                         overlap=True)
    runner = SelfPlayRunner(cfg, evaluate, seed=1)
    for _ in range(5):
        runner.step()
    first, start = runner.stats.nn_evals, time.perf_counter()
    while time.perf_counter() - start < seconds:
        runner.step()
    return (runner.stats.nn_evals - first) / (time.perf_counter() - start)


def measure(device: str, sizes: list[int], nets: list[tuple[int, int]], batches: list[int], games: int,
            seconds: float, threads: int) -> list[dict]:
    import torch

    from azgo_core.model import AZNet, NetConfig, count_parameters, make_evaluator

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    rows = []
    for size in sizes:
        for blocks, channels in nets:
            torch.manual_seed(0)
            net = AZNet(NetConfig(board_size=size, blocks=blocks, channels=channels))
            row = {"board": size, "net": f"{blocks}x{channels}", "params": count_parameters(net), "nn_evals_per_s": {}}
            rng = np.random.default_rng(0)
            for name, dtype in dtypes.items():
                evaluate = make_evaluator(copy.deepcopy(net), device, dtype)
                for batch in batches:
                    planes = (rng.random((batch, net.config.in_planes, size, size)) < 0.3).astype(np.uint8)
                    row["nn_evals_per_s"][f"{name}_{batch}"] = timed_evals(evaluate, planes, seconds)
            evaluate = make_evaluator(copy.deepcopy(net), device, dtypes["bf16"])
            planes = (rng.random((games, net.config.in_planes, size, size)) < 0.3).astype(np.uint8)
            row["nn_evals_per_s_runner_batch"] = timed_evals(evaluate, planes, seconds)
            row["selfplay_sims_per_s"] = selfplay_rate(evaluate, size, games, 2 * seconds, threads)
            row["selfplay_vs_nn"] = row["selfplay_sims_per_s"] / row["nn_evals_per_s_runner_batch"]
            rows.append(row)
            print(f"{size}x{size} {row['net']:>7}: " + "  ".join(
                f"{k} {v:,.0f}" for k, v in row["nn_evals_per_s"].items())
                + f"  self-play {row['selfplay_sims_per_s']:,.0f} sims/s ({row['selfplay_vs_nn']:.2f} of the network"
                  f" at batch {games})", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="build/bench/gpu.json")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (a check of the harness)")
    ap.add_argument("--seconds", type=float, default=3.0, help="wall time per figure")
    ap.add_argument("--sizes", default="9,19")
    ap.add_argument("--nets", default="4x48,10x128", help="BLOCKSxCHANNELS, comma-separated")
    ap.add_argument("--batches", default="256,1024,4096")
    ap.add_argument("--games", type=int, default=1024, help="self-play games at once (also the runner's batch)")
    ap.add_argument("--search-threads", type=int, default=0, help="0: every core")
    args = ap.parse_args()

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench-gpu: no CUDA device on this machine (torch.cuda.is_available() is false): no figures")
        return 0
    nets = [tuple(int(x) for x in spec.split("x")) for spec in args.nets.split(",")]
    rows = measure(args.device, [int(s) for s in args.sizes.split(",")], nets,
                   [int(b) for b in args.batches.split(",")], args.games, args.seconds, args.search_threads)
    machine = {"device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
               "torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
               "load_average": os.getloadavg(), "seconds_per_figure": args.seconds, "games": args.games}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "machine": machine}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
