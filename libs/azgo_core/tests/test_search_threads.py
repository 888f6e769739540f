"""Search over several threads (``Forest(threads=...)``, ``SelfPlayConfig.search_threads``):
the parallel kernels give the trees, batches and noise of the sequential ones.

Random draws stay equal too: numba's generator is per thread, so the threaded step draws
Dirichlet and Gumbel noise on the calling thread, in the sequential kernels' order; the tests
therefore run with noise on.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from azgo_core import chunkpool, mcts
from azgo_core.batchcheck import scan_batch
from azgo_core.records import encode_batch
from azgo_core.search import Forest, SearchConfig, search_threads, uniform_evaluator
from azgo_core.selfplay import SelfPlayConfig, SelfPlayRunner
from azgo_core.verify import check_record


def planes_evaluator(size, history=8):
    """A deterministic network: logits and value are fixed random functions of the planes, so
    a different batch row order or a wrong plane would change the search."""
    rng = np.random.default_rng(11)
    c = 2 * history + 1
    w_logits = rng.normal(size=(c * size * size, size * size + 1)).astype(np.float32) * 0.05
    w_value = rng.normal(size=c * size * size).astype(np.float32) * 0.02
    seen = []

    def evaluate(planes):
        x = planes.reshape(planes.shape[0], -1).astype(np.float32)
        seen.append(planes.copy())
        return x @ w_logits, np.tanh(x @ w_value)

    evaluate.seen = seen
    return evaluate


def play_forest(threads, algorithm, size=7, games=10, batch_size=4, moves=6, seed=5):
    """Search and play ``moves`` moves in ``games`` games with mixed visits and noise; returns
    each move's root visits and values, and the batches the network saw."""
    config = SearchConfig(algorithm=algorithm, visits=24, cheap_visits=6, max_considered=4)
    forest = Forest(games, size, config, batch_size=batch_size, threads=threads)
    evaluate = planes_evaluator(size)
    mcts.seed_noise(seed)
    out = []
    for t in range(moves):
        for g in range(games):
            full = (g + t) % 3 == 0
            forest.start(g, config.visits if full else config.cheap_visits, noise=full or g % 2 == 0)
        forest.search(np.arange(games), evaluate)
        for g in range(games):
            m, n = forest.root_visits(g)
            # the noise drawn: Dirichlet (counted) under puct, g(a) under gumbel
            noise = forest.noise_draws(g) if algorithm == "puct" else forest.gum[0][g].tolist()
            out.append((g, m.tolist(), n.tolist(), forest.root_value(g), noise))
            move = forest.chosen_move(g) if config.gumbel else int(m[np.argmax(n)])
            forest.play(g, move)
    return out, evaluate.seen


@pytest.fixture
def threads_seen(monkeypatch):
    """Make every chunk of descents and expansions linger 1 ms (GIL released) so the helper
    thread surely takes some, even on a busy host; collects the threads that ran them."""
    seen = set()
    for name in ("select_chunk", "expand_chunk"):
        kernel = getattr(mcts, name)

        def slow(*args, kernel=kernel):
            kernel(*args)
            seen.add(threading.get_ident())
            time.sleep(0.001)

        monkeypatch.setattr(mcts, name, slow)
    return seen


@pytest.mark.parametrize("algorithm", ["puct", "gumbel"])
def test_two_threads_search_the_same_trees_as_one(algorithm, threads_seen):
    one, batches_one = play_forest(1, algorithm)
    two, batches_two = play_forest(2, algorithm)
    assert len(threads_seen) == 2
    assert two == one
    assert len(batches_two) == len(batches_one)
    assert all(np.array_equal(a, b) for a, b in zip(batches_one, batches_two))
    assert any(np.any(noise) for *_, noise in one)  # noise was drawn, and drawn alike


@pytest.mark.parametrize("algorithm", ["puct", "gumbel"])
def test_two_threads_play_the_same_selfplay_games_and_records_pass_the_checks(algorithm, threads_seen):
    search = SearchConfig(algorithm=algorithm, visits=10, cheap_visits=4, full_search_prob=0.5)

    def games(threads):
        cfg = SelfPlayConfig(board_size=5, komi=7.5, parallel_games=6, batch_size=4, resign_min_moves=3,
                             search_threads=threads, search=search)
        runner = SelfPlayRunner(cfg, planes_evaluator(5), model_generation=1, worker_id="w", seed=3)
        assert runner.forest.threads == threads
        return runner.play(6)

    one, two = games(1), games(2)
    assert len(threads_seen) == 2
    for r in two:
        check_record(r)
    assert scan_batch(encode_batch(two), 5, 10, 1 << 20) is not None  # the broker's batch scan
    assert encode_batch(two) == encode_batch(one)  # moves, visits, values, results: byte for byte


def test_a_full_arena_is_reported_by_the_parallel_kernels_too():
    forest = Forest(2, 5, SearchConfig(visits=4, cheap_visits=4), max_visits=4, threads=2)
    for g in range(2):
        forest.start(g, 4, noise=False)
    forest.targets[:] = 50  # past the arena's size, as a corrupted target would be
    with pytest.raises(IndexError, match="arena is full"):
        forest.search(np.arange(2), uniform_evaluator)


def test_the_pool_runs_every_chunk_once_and_hands_errors_back():
    pool = chunkpool.pool(2)
    runs = []

    def fn(c):
        runs.append((c, threading.get_ident()))
        time.sleep(0.002)

    pool.map(fn, 16)
    assert sorted(c for c, _ in runs) == list(range(16))
    assert len({t for _, t in runs}) == 2  # the caller and its helper

    def boom(c):
        if c == 5:
            raise RuntimeError("chunk 5")

    with pytest.raises(RuntimeError, match="chunk 5"):
        pool.map(boom, 8)
    pool.map(fn, 3)  # still usable


def test_thread_counts_resolve():
    assert search_threads(1) == 1 and search_threads(3) == 3
    assert search_threads(0) == len(os.sched_getaffinity(0))
    with pytest.raises(ValueError):
        search_threads(-1)


def test_the_setting_reaches_the_runner():
    from azgo_core.config import ConfigError, load_settings

    assert load_settings(None).selfplay_config().search_threads == 1  # CPU workers share the cores
    assert load_settings(None, self_play={"search_threads": 0}).selfplay_config().search_threads == 0
    with pytest.raises(ConfigError, match="self_play.search_threads"):
        load_settings(None, self_play={"search_threads": -1})
