"""The network and the search pipelined over two halves of the games (``Forest(overlap=True)``,
``self_play.overlap``): the same trees as without, and the network really runs beside the search."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from test_search_threads import planes_evaluator

from azgo_core import mcts
from azgo_core.records import encode_batch
from azgo_core.search import Forest, SearchConfig
from azgo_core.selfplay import SelfPlayConfig, SelfPlayRunner
from azgo_core.verify import check_record


def row_by_row(network):
    """``network`` called one position at a time: a batch's split (one call or two halves) then
    changes no output bit (a matrix product's rounding can depend on the batch's shape)."""
    def evaluate(planes):
        outs = [network(planes[i:i + 1]) for i in range(len(planes))]
        return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])

    evaluate.seen = network.seen
    return evaluate


def play(overlap, algorithm="puct", noise=False, threads=1, size=7, games=9, batch_size=8, moves=5, seed=4):
    """Root visits and values of ``moves`` searched moves in ``games`` games, and every plane
    the network saw, in order."""
    config = SearchConfig(algorithm=algorithm, visits=20, cheap_visits=6, max_considered=4)
    forest = Forest(games, size, config, batch_size=batch_size, threads=threads, overlap=overlap)
    evaluate = row_by_row(planes_evaluator(size))
    mcts.seed_noise(seed)
    out = []
    for t in range(moves):
        for g in range(games):
            forest.start(g, config.visits if (g + t) % 2 else config.cheap_visits, noise=noise)
        forest.search(np.arange(games), evaluate)
        for g in range(games):
            m, n = forest.root_visits(g)
            out.append((m.tolist(), n.tolist(), forest.root_value(g)))
            forest.play(g, forest.chosen_move(g) if config.gumbel else int(m[np.argmax(n)]))
    return out, np.concatenate(evaluate.seen)


@pytest.mark.parametrize("algorithm", ["puct", "gumbel"])
def test_without_noise_overlap_searches_the_same_trees_and_batches(algorithm):
    plain, planes = play(overlap=False, algorithm=algorithm)
    piped, piped_planes = play(overlap=True, algorithm=algorithm)
    assert piped == plain
    # two network calls a step (half A's rows, then half B's) hold the one call's rows, in order
    assert np.array_equal(piped_planes, planes)


@pytest.mark.parametrize("algorithm", ["puct", "gumbel"])
def test_with_noise_a_seed_gives_the_same_search_run_after_run_and_on_two_threads(algorithm):
    first, _ = play(overlap=True, algorithm=algorithm, noise=True)
    assert play(overlap=True, algorithm=algorithm, noise=True)[0] == first
    assert play(overlap=True, algorithm=algorithm, noise=True, threads=2)[0] == first


def test_the_network_evaluates_one_half_while_the_search_descends_the_other(monkeypatch):
    """Half A's network call holds until half B's descents have run: a step that evaluated A
    before descending B would wait here the whole timeout and fail."""
    descents = []
    b_descended = threading.Event()
    kernel = mcts.select_chunk

    def select_chunk(*args):
        kernel(*args)
        descents.append(threading.get_ident())
        if len(descents) == 2:  # the first step's second half
            b_descended.set()

    monkeypatch.setattr(mcts, "select_chunk", select_chunk)
    network = planes_evaluator(5)
    waited, network_threads = [], set()

    def evaluate(planes):
        network_threads.add(threading.get_ident())
        if not waited:
            waited.append(b_descended.wait(timeout=60))
        return network(planes)

    forest = Forest(6, 5, SearchConfig(visits=8, cheap_visits=8), batch_size=6, overlap=True)
    for g in range(6):
        forest.start(g, 8, noise=False)
    forest.search(np.arange(6), evaluate)
    assert waited == [True]
    assert threading.get_ident() not in network_threads  # the network has a thread of its own
    assert set(descents) == {threading.get_ident()}


def test_a_network_error_reaches_the_caller():
    forest = Forest(4, 5, SearchConfig(visits=4, cheap_visits=4), batch_size=4, overlap=True)
    for g in range(4):
        forest.start(g, 4, noise=False)

    def broken(planes):
        raise RuntimeError("network down")

    with pytest.raises(RuntimeError, match="network down"):
        forest.search(np.arange(4), broken)


def test_the_setting_reaches_the_runner_and_its_games_pass_the_checks():
    from azgo_core.config import load_settings

    assert load_settings(None).selfplay_config().overlap is False  # CPU workers share their cores
    cfg = load_settings(None, board={"size": 5}, self_play={"overlap": True, "parallel_games": 6, "batch_size": 6},
                        search={"visits": 8, "cheap_visits": 4}).selfplay_config()
    runner = SelfPlayRunner(cfg, planes_evaluator(5), model_generation=1, worker_id="w", seed=2)
    assert runner.forest.nn is not None
    records = runner.play(4)
    assert len(records) == 4
    for r in records:
        check_record(r)
    again = SelfPlayRunner(cfg, planes_evaluator(5), model_generation=1, worker_id="w", seed=2).play(4)
    assert encode_batch(again) == encode_batch(records)  # a seed gives the same games
    assert SelfPlayRunner(SelfPlayConfig(), planes_evaluator(9), worker_id="w").forest.nn is None
