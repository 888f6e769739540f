"""make bench-core: speed of the hot path on 9x9, one core unless said.

Prints a table and writes JSON (default build/bench/core.json):

  board_play_per_s       legal moves played in random games (play only, compiled replay)
  legal_mask_per_s       full legal-move masks (positional superko included) along random games
  pyspiel_mask_per_s     OpenSpiel's C++ Go (``open_spiel``, a benchmark-only dependency) on the
                         same games: ``legal_actions_mask`` then ``apply_action`` before every move
  legal_mask_vs_pyspiel  legal_mask_per_s / pyspiel_mask_per_s
  mcts_sims_per_s        leaf evaluations/s of the self-play runner, 64 games, stub evaluator
                         (uniform priors, value 0) that still receives the input planes
  mcts_sims_per_s_1_thread, mcts_sims_per_s_2_threads
                         the same runner with self_play.search_threads 1 and 2, measured in
                         alternating slices of one run (a shared host's load hits both alike)
  mcts_threads_speedup   their ratio; machine.load_average says how busy the host was
  nn_evals_per_s         the default network alone at the runner's batch size (64), 1 thread
  nn_evals_per_s_batch1  the same network one position at a time: the cost of not batching
  selfplay_sims_per_s, selfplay_sims_per_s_overlap
                         the runner with the real network, 64 games, 1 search thread, without
                         and with self_play.overlap (the network on a thread of its own, beside
                         the search), in alternating slices of one run
  selfplay_vs_nn_bound   selfplay_sims_per_s_overlap / nn_evals_per_s (1.0 = the network never
                         waits for the search); selfplay_vs_nn_bound_no_overlap: without overlap

The runner searches 200 visits (full) and 40 (cheap) whatever the defaults, so that figures of
different commits compare.

Each figure runs for a fixed wall time after a warm-up that compiles (numba caches kernels on
disk, so only the first run on a machine pays for compilation).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from numba import njit

from azgo_core import board as B
from azgo_core.position import zobrist

SIZE = 9


@njit(cache=True)
def _random_games(N, zob, games, seed, moves_out, lengths):
    """Play ``games`` random games (no filling of one's own single-point eyes; pass when
    nothing else is left); store their moves (padded, -1 pass) for the replay benchmarks."""
    np.random.seed(seed)
    W = N + 1
    P = (N + 2) * W
    cap = moves_out.shape[1]
    s = np.empty(7 * P + B.NUM_SCALARS, np.int32)
    hist = np.zeros(cap + 2, np.uint64)
    bloom = np.zeros(B.BLOOM_WORDS, np.uint64)
    path = np.zeros(1, np.uint64)
    mask = np.empty(N * N + 1, np.bool_)
    cand = np.empty(N * N, np.int32)
    for g in range(games):
        B.init_board(s, N)
        bloom[:] = 0
        hist[0] = B.get_hash(s, P)
        B.bloom_add(bloom, hist[0])
        nh = 1
        t = 0
        passes = 0
        while t < cap and passes < 2:
            B.legal_mask(s, N, zob, hist, nh, bloom, path, 0, mask)
            colour = s[7 * P + B.TO_PLAY]
            k = 0
            for i in range(N * N):
                if mask[i]:
                    p = (i // N + 1) * W + i % N + 1
                    eye = True
                    for n in (p - 1, p + 1, p - W, p + W):
                        if s[n] != colour and s[n] != B.BORDER:
                            eye = False
                    if not eye:
                        cand[k] = p
                        k += 1
            p = cand[np.random.randint(k)] if k > 0 else -1
            passes = passes + 1 if p < 0 else 0
            B.play_move(s, N, p, zob)
            hist[nh] = B.get_hash(s, P)
            B.bloom_add(bloom, hist[nh])
            nh += 1
            moves_out[g, t] = p
            t += 1
        lengths[g] = t


@njit(cache=True)
def _replay(N, zob, moves, lengths, reps):
    """Replay the recorded games ``reps`` times: moves played (play only)."""
    s = np.empty(7 * (N + 2) * (N + 1) + B.NUM_SCALARS, np.int32)
    played = 0
    for _ in range(reps):
        for g in range(moves.shape[0]):
            B.init_board(s, N)
            for t in range(lengths[g]):
                B.play_move(s, N, moves[g, t], zob)
            played += lengths[g]
    return played


@njit(cache=True)
def _masks(N, zob, moves, lengths, reps):
    """Replay the games building the full legal mask (superko included) before every move."""
    W = N + 1
    P = (N + 2) * W
    s = np.empty(7 * P + B.NUM_SCALARS, np.int32)
    hist = np.zeros(moves.shape[1] + 2, np.uint64)
    bloom = np.zeros(B.BLOOM_WORDS, np.uint64)
    path = np.zeros(1, np.uint64)
    mask = np.empty(N * N + 1, np.bool_)
    built = 0
    for _ in range(reps):
        for g in range(moves.shape[0]):
            B.init_board(s, N)
            bloom[:] = 0
            hist[0] = B.get_hash(s, P)
            B.bloom_add(bloom, hist[0])
            nh = 1
            for t in range(lengths[g]):
                B.legal_mask(s, N, zob, hist, nh, bloom, path, 0, mask)
                built += 1
                B.play_move(s, N, moves[g, t], zob)
                hist[nh] = B.get_hash(s, P)
                B.bloom_add(bloom, hist[nh])
                nh += 1
    return built


def pyspiel_actions(moves: np.ndarray, lengths: np.ndarray, N: int) -> list[list[int]]:
    """The games' moves as OpenSpiel Go actions: row * N + col, N * N for a pass.

    Our padded point p is ((row + 1) * (N + 1) + col + 1); OpenSpiel may count rows from the
    other edge, which mirrors the board and changes no move's legality.
    """
    W = N + 1
    return [[N * N if p < 0 else (p // W - 1) * N + p % W - 1 for p in moves[g, :lengths[g]].tolist()]
            for g in range(len(lengths))]


def pyspiel_game(N: int, max_moves: int):
    import pyspiel

    return pyspiel.load_game("go", {"board_size": N, "komi": 7.5, "max_game_length": max_moves + 2})


def _pyspiel_masks(game, games: list[list[int]]) -> int:
    built = 0
    for actions in games:
        state = game.new_initial_state()
        for a in actions:
            state.legal_actions_mask()
            state.apply_action(a)
            built += 1
    return built


def check_rules(N: int, games: int, seed: int) -> int:
    """Replay ``games`` of the benchmark's random games in OpenSpiel and compare the legal moves
    before every move with ours (``Position.legal_mask``): OpenSpiel must accept every move and
    allow every move we allow; a move only it allows must be one we refuse for superko (it
    checks only the simple ko). Prints what it found; returns the exit status (0: agreed)."""
    from azgo_core.position import Position

    moves = np.full((games, 2 * N * N), -1, np.int32)
    lengths = np.zeros(games, np.int32)
    _random_games(N, zobrist(N), games, seed, moves, lengths)
    game = pyspiel_game(N, moves.shape[1])
    positions = superko = ended = 0
    problems = []
    for g, actions in enumerate(pyspiel_actions(moves, lengths, N)):
        ours, theirs = Position(N, move_cap=moves.shape[1]), game.new_initial_state()
        for t, action in enumerate(actions):
            mask = ours.legal_mask()
            their_mask = np.array(theirs.legal_actions_mask(), bool)
            if (mask & ~their_mask).any():
                problems.append(f"game {g} move {t}: OpenSpiel refuses {np.flatnonzero(mask & ~their_mask).tolist()}")
            for move in np.flatnonzero(their_mask & ~mask).tolist():
                if ours.why_illegal(move) != "superko":
                    problems.append(f"game {g} move {t}: OpenSpiel allows {move} ({ours.why_illegal(move)} for us)")
                superko += 1
            ours.play(action)
            theirs.apply_action(action)
            positions += 1
        ended += actions[-2:] == [N * N, N * N] and theirs.is_terminal()
    print(f"{games} random {N}x{N} games, {positions} positions: OpenSpiel accepted every move; "
          f"{superko} moves refused for superko by us only; {ended} games ended on two passes in both")
    for line in problems[:20]:
        print("disagreement:", line)
    return 1 if problems else 0


def timed(fn, seconds: float) -> tuple[float, float]:
    """Call ``fn() -> work done`` until ``seconds`` pass; returns (work, elapsed)."""
    work, start = 0.0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        work += fn()
    return work, elapsed


def bench_board(seconds: float) -> dict:
    zob = zobrist(SIZE)
    games = 200
    moves = np.full((games, 2 * SIZE * SIZE), -1, np.int32)
    lengths = np.zeros(games, np.int32)
    _random_games(SIZE, zob, games, 7, moves, lengths)
    _replay(SIZE, zob, moves[:1], lengths[:1], 1)
    _masks(SIZE, zob, moves[:1], lengths[:1], 1)
    plays, t1 = timed(lambda: _replay(SIZE, zob, moves, lengths, 20), seconds)
    masks, t2 = timed(lambda: _masks(SIZE, zob, moves, lengths, 2), seconds)
    game, actions = pyspiel_game(SIZE, moves.shape[1]), pyspiel_actions(moves, lengths, SIZE)
    _pyspiel_masks(game, actions[:1])
    theirs, t3 = timed(lambda: _pyspiel_masks(game, actions), seconds)
    return {"board_play_per_s": plays / t1, "legal_mask_per_s": masks / t2, "pyspiel_mask_per_s": theirs / t3,
            "legal_mask_vs_pyspiel": (masks / t2) / (theirs / t3), "random_game_length": float(lengths.mean())}


def make_runner(evaluate, games: int = 64, threads: int = 1, overlap: bool = False):
    """A warmed-up runner of ``games`` games (200/40 visits) on ``threads`` search threads."""
    from azgo_core.params import SearchConfig, SelfPlayConfig
    from azgo_core.selfplay import SelfPlayRunner

    search = SearchConfig(visits=200, cheap_visits=40, resign_calibration_games=0)
    cfg = SelfPlayConfig(board_size=SIZE, parallel_games=games, batch_size=games, search_threads=threads,
                         overlap=overlap, search=search)
    runner = SelfPlayRunner(cfg, evaluate, seed=3)
    for _ in range(20):
        runner.step()
    return runner


def run_for(runner, seconds: float) -> tuple[float, float]:
    """(leaf evaluations, elapsed seconds) of ``runner`` stepping for ``seconds``."""
    start_evals = runner.stats.nn_evals
    _, elapsed = timed(lambda: len(runner.step()), seconds)
    return runner.stats.nn_evals - start_evals, elapsed


def bench_runner(evaluate, seconds: float, games: int = 64) -> float:
    """Leaf evaluations per second of a 64-game runner (default search settings)."""
    evals, elapsed = run_for(make_runner(evaluate, games), seconds)
    return evals / elapsed


def alternate(runners: dict, seconds: float, slices: int = 8) -> dict:
    """Leaf evaluations per second of each runner, run in alternating slices of ``seconds`` in
    all each (a shared host's load hits them alike)."""
    done = {key: [0.0, 0.0] for key in runners}
    for _ in range(slices):
        for key, runner in runners.items():
            evals, elapsed = run_for(runner, seconds / slices)
            done[key][0] += evals
            done[key][1] += elapsed
    return {key: evals / elapsed for key, (evals, elapsed) in done.items()}


def bench_search_threads(evaluate, seconds: float) -> dict:
    """The runner on 1 and 2 search threads."""
    rate = alternate({1: make_runner(evaluate, threads=1), 2: make_runner(evaluate, threads=2)}, seconds)
    return {"mcts_sims_per_s_1_thread": rate[1], "mcts_sims_per_s_2_threads": rate[2],
            "mcts_threads_speedup": rate[2] / rate[1]}


def bench_nn(seconds: float) -> dict:
    import torch

    from azgo_core.model import AZNet, NetConfig, count_parameters, make_evaluator
    from azgo_core.search import SearchConfig

    torch.manual_seed(0)
    net = AZNet(NetConfig(board_size=SIZE))
    evaluate = make_evaluator(net)
    planes = (np.random.default_rng(0).random((64, NetConfig(board_size=SIZE).in_planes, SIZE, SIZE)) < 0.3).astype(np.uint8)
    evaluate(planes)
    n64, t64 = timed(lambda: evaluate(planes)[1].shape[0], seconds)
    n1, t1 = timed(lambda: evaluate(planes[:1])[1].shape[0], seconds / 2)
    assert SearchConfig().history == net.config.history
    sp = alternate({False: make_runner(evaluate), True: make_runner(evaluate, overlap=True)}, 2 * seconds)
    return {
        "nn_params": count_parameters(net),
        "nn_evals_per_s": n64 / t64,
        "nn_evals_per_s_batch1": n1 / t1,
        "selfplay_sims_per_s": sp[False],
        "selfplay_sims_per_s_overlap": sp[True],
    }


TARGETS = {"board_play_per_s": 5_000_000, "legal_mask_per_s": 1_000_000, "legal_mask_vs_pyspiel": 3.0,
           "mcts_sims_per_s": 150_000,
           "mcts_threads_speedup": 1.8, "selfplay_vs_nn_bound": 0.85}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="build/bench/core.json")
    ap.add_argument("--seconds", type=float, default=8.0, help="wall time per figure")
    ap.add_argument("--check-rules", type=int, metavar="SIZE",
                    help="only compare our legal moves with OpenSpiel's along random SIZExSIZE games, then exit")
    ap.add_argument("--games", type=int, default=40, help="games for --check-rules")
    args = ap.parse_args()
    if args.check_rules:
        raise SystemExit(check_rules(args.check_rules, args.games, seed=11))

    import torch

    torch.set_num_threads(1)
    from azgo_core.search import uniform_evaluator

    results: dict = {}
    results.update(bench_board(args.seconds))
    results["mcts_sims_per_s"] = bench_runner(uniform_evaluator, args.seconds)
    load_before = os.getloadavg()[0]
    results.update(bench_search_threads(uniform_evaluator, args.seconds))
    load = (load_before, os.getloadavg()[0])
    results.update(bench_nn(args.seconds))
    results["selfplay_vs_nn_bound"] = results["selfplay_sims_per_s_overlap"] / results["nn_evals_per_s"]
    results["selfplay_vs_nn_bound_no_overlap"] = results["selfplay_sims_per_s"] / results["nn_evals_per_s"]
    results["batching_speedup"] = results["nn_evals_per_s"] / results["nn_evals_per_s_batch1"]
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "torch_threads": 1,
                          "board_size": SIZE, "parallel_games": 64, "seconds_per_figure": args.seconds,
                          "load_average": load}

    print(f"{'figure':<28}{'measured':>16}{'target':>14}  ok")
    for key, value in results.items():
        if key == "machine":
            continue
        target = TARGETS.get(key)
        ok = "" if target is None else ("yes" if value >= target else "NO")
        shown = f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
        print(f"{key:<28}{shown:>16}{'' if target is None else f'{target:,}':>14}  {ok}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"1-minute load average {load[0]:.2f} before the thread figures, {load[1]:.2f} after, on "
          f"{os.cpu_count()} cpus")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
