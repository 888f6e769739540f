"""Gumbel AlphaZero search (``search.algorithm: gumbel``, ``azgo_core.gumbel`` in the compiled
forest): the PUCT tests of ``test_search`` again where they apply (the only winning capture,
visits summing to the simulations), plus what is Gumbel's own: the Sequential Halving
schedule, Gumbel-Top-k, the completed-Q policy target pi' over legal moves and its quantised
form in a record, the self-play runner end to end, and the settings.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from test_search import CAPTURE_POSITIONS, VISIT_POSITIONS, board, legal_moves, random_evaluator, result_evaluator, vertex

from azgo_core import gumbel, mcts
from azgo_core.config import ConfigError, load_settings
from azgo_core.position import Position
from azgo_core.records import decode_batch, encode_batch
from azgo_core.search import POLICY_TARGET_TOTAL, Forest, MctsPlayer, SearchConfig, quantise_policy, uniform_evaluator
from azgo_core.selfplay import SelfPlayConfig, SelfPlayRunner


def gumbel_config(visits, **kwargs):
    return SearchConfig(algorithm="gumbel", visits=visits, cheap_visits=visits, **kwargs)


def schedule(m, n):
    out = np.full(n + 1, -1, np.int32)
    assert gumbel.sequential_halving(m, n, out) == n
    return out[:n].tolist()


def rounds(start, actions, count):
    """The schedule of ``count`` rounds over ``actions`` actions that have ``start`` visits."""
    return [start + i for i in range(count) for _ in range(actions)]


def root_counts(f, g=0):
    """Visit counts N(a) of the root's children in edge order (visited or not)."""
    root = f.info[g, mcts.ROOT]
    first, count = f.tree[0][g, root], f.tree[1][g, root]
    return f.tree[6][g, first:first + count].copy()


# --- Sequential Halving -------------------------------------------------------------------


def test_sequential_halving_schedule():
    # m=4, 8 simulations: 2 phases of 4; one visit to each of the 4, then two more to each of the best 2
    assert schedule(4, 8) == [0, 0, 0, 0, 1, 1, 2, 2]
    # m=16, 64 simulations: 4 phases of 16 over 16, 8, 4 and 2 actions
    # (a round visits every remaining action once, all at the same count)
    assert schedule(16, 64) == rounds(0, 16, 1) + rounds(1, 8, 2) + rounds(3, 4, 4) + rounds(7, 2, 8)
    # fewer simulations than actions: the first phase does not end, each action visited once at most
    assert schedule(16, 5) == [0] * 5
    # one action takes every simulation; leftovers after the last phase go on between the last 2
    assert schedule(1, 4) == [0, 1, 2, 3]
    assert schedule(2, 3) == [0, 0, 1]
    assert schedule(3, 7) == [0, 0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("m, n, final", [(4, 8, [3, 3, 1, 1]), (16, 64, [15, 15, 7, 7] + [3] * 4 + [1] * 8),
                                         (8, 20, [6, 6, 2, 2, 1, 1, 1, 1])])
def test_root_visits_follow_the_halving(m, n, final):
    f = Forest(1, 5, gumbel_config(n, max_considered=m))
    f.start(0, n, noise=True)
    f.search(np.array([0]), random_evaluator(n))
    counts = root_counts(f)
    assert sorted(counts.tolist(), reverse=True)[:len(final)] == final
    assert counts.sum() == n and (counts > 0).sum() == min(m, n)


def test_phases_keep_the_best_half_by_g_plus_logits_plus_sigma():
    # watch each simulation's root child: a phase's actions all have the count the schedule asks
    n, m = 24, 8
    f = Forest(1, 5, gumbel_config(n, max_considered=m))
    f.start(0, n, noise=True)
    seen = []
    evaluate = random_evaluator(3)
    gids = np.array([0])
    while len(f.pending(gids)):
        before = root_counts(f) if f.tree[1][0, f.info[0, mcts.ROOT]] >= 0 else None
        f.step(gids, evaluate)
        if before is not None:
            after = root_counts(f)
            (i,) = np.flatnonzero(after != before)
            seen.append(int(before[i]))
    assert seen == schedule(m, n)


def test_gumbel_top_k_considers_the_largest_g_plus_logits():
    # priors favour the first moves, no noise: the m visited moves are the m largest logits
    def evaluate(planes):
        logits = np.tile(-np.arange(26, dtype=np.float32) * 0.5, (len(planes), 1))
        return logits, np.zeros(len(planes), np.float32)

    f = Forest(1, 5, gumbel_config(12, max_considered=4))
    f.start(0, 12, noise=False)
    f.search(np.array([0]), evaluate)
    moves, counts = f.root_visits(0)
    assert sorted(moves.tolist()) == [0, 1, 2, 3] and counts.sum() == 12


# --- finding the only winning move ------------------------------------------------------


@pytest.mark.parametrize("evaluator", ["uniform", "result"])
@pytest.mark.parametrize("text, setup, winner", CAPTURE_POSITIONS)
def test_gumbel_finds_the_only_winning_capture(text, setup, winner, evaluator):
    pos = board(text, **setup)
    evaluate = uniform_evaluator if evaluator == "uniform" else result_evaluator(pos.komi)
    player = MctsPlayer(evaluate, visits=300, config=gumbel_config(300))
    assert len(legal_moves(pos)) <= 16  # every move is considered
    assert vertex(pos, player.genmove(pos)) == winner
    moves, counts, value = player.analyse(pos)
    assert counts.sum() == 300
    most = [vertex(pos, m) for m in moves[counts == counts.max()]]
    assert winner in most and len(most) <= 2  # a survivor of the halving's last phase
    target_moves, pi = player.forest.improved_policy(0)
    # pi' ranks the winner first (a move whose refutation its few visits missed may tie it)
    assert pi[[vertex(pos, m) for m in target_moves].index(winner)] == pytest.approx(pi.max())
    assert value > 0.5
    assert pos.n_moves == 0 and pos.moves == []


@pytest.mark.parametrize("max_considered", [2, 16])
def test_with_noise_the_winning_capture_wins_whenever_it_is_sampled(max_considered):
    pos = board(*CAPTURE_POSITIONS[0].values[:1], **CAPTURE_POSITIONS[0].values[1])
    winner = CAPTURE_POSITIONS[0].values[2]
    f = Forest(1, pos.size, gumbel_config(64, max_considered=max_considered), komi=pos.komi, move_cap=pos.move_cap)
    mcts.seed_noise(5)
    for _ in range(10):
        f.load(0, pos)
        f.start(0, 64, noise=True)
        f.search(np.array([0]), result_evaluator(pos.komi))
        moves, counts = f.root_visits(0)
        if any(vertex(pos, m) == winner for m in moves):
            assert vertex(pos, f.chosen_move(0)) == winner
        assert counts.sum() == 64


# --- visit accounting -------------------------------------------------------------------


@pytest.mark.parametrize("visits", [1, 2, 5, 26, 64, 300])
@pytest.mark.parametrize("name", sorted(VISIT_POSITIONS))
def test_root_visits_sum_to_the_simulations_asked(name, visits):
    pos = VISIT_POSITIONS[name]()
    for evaluate in (uniform_evaluator, random_evaluator(visits)):
        player = MctsPlayer(evaluate, visits=visits, config=gumbel_config(visits))
        moves, counts, value = player.analyse(pos)
        assert counts.sum() == visits
        assert (counts > 0).all() and len(set(moves.tolist())) == len(moves)
        assert set(moves.tolist()) <= set(legal_moves(pos).tolist())
        assert -1.0 <= value <= 1.0
        assert player.forest.chosen_move(0) in moves[counts == counts.max()].tolist()


def test_no_dirichlet_noise_and_no_tree_reuse_under_gumbel():
    cfg = gumbel_config(40, reuse_tree=True)
    f = Forest(1, 5, cfg)
    for _ in range(4):
        f.start(0, 40, noise=True)
        f.search(np.array([0]), random_evaluator(1))
        assert root_counts(f).sum() == 40  # a fresh root every move: no reused visits
        f.play(0, f.chosen_move(0))
        assert f.info[0, mcts.NODES] == 1  # the chosen subtree was not kept
    assert f.noise_draws(0) == 0


def test_a_second_search_of_the_same_root_starts_afresh():
    f = Forest(1, 5, gumbel_config(30))
    for _ in range(2):
        f.start(0, 30, noise=True)
        f.search(np.array([0]), uniform_evaluator)
        assert root_counts(f).sum() == 30


def test_each_game_of_a_forest_follows_its_own_budget():
    f = Forest(3, 5, gumbel_config(60), komi=0.5)
    targets = [5, 17, 60]
    for g, t in enumerate(targets):
        f.start(g, t, noise=True)
    evaluated = f.search(np.arange(3), uniform_evaluator)
    assert [int(f.root_visits(g)[1].sum()) for g in range(3)] == targets
    assert evaluated == sum(targets) + 3


# --- the policy target ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VISIT_POSITIONS))
def test_policy_target_is_a_distribution_over_legal_moves(name):
    pos = VISIT_POSITIONS[name]()
    f = Forest(1, pos.size, gumbel_config(32), komi=pos.komi, move_cap=pos.move_cap)
    f.load(0, pos)
    f.start(0, 32, noise=True)
    f.search(np.array([0]), random_evaluator(7))
    moves, pi = f.improved_policy(0)
    assert sorted(moves.tolist()) == legal_moves(pos).tolist()  # every legal move, unvisited ones too
    assert np.all(pi > 0) and pi.sum() == pytest.approx(1.0)
    played = f.chosen_move(0)
    tm, tw = f.root_policy_target(0, played)
    assert played in tm.tolist() and tw[tm.tolist().index(played)] >= 1
    assert set(tm.tolist()) <= set(legal_moves(pos).tolist()) and len(set(tm.tolist())) == len(tm)
    assert (tw > 0).all() and POLICY_TARGET_TOTAL <= tw.sum() <= POLICY_TARGET_TOTAL + 1
    # quantisation error at most one unit per move
    full = dict(zip(moves.tolist(), pi))
    for m, w in zip(tm.tolist(), tw.tolist()):
        assert abs(w - full[m] * POLICY_TARGET_TOTAL) <= 1


def test_completed_q_raises_the_target_of_a_better_visited_move():
    # uniform priors: pi' ranks visited moves by Q, and unvisited ones share v_mix
    pos = board(*CAPTURE_POSITIONS[0].values[:1], **CAPTURE_POSITIONS[0].values[1])
    f = Forest(1, pos.size, gumbel_config(40), komi=pos.komi, move_cap=pos.move_cap)
    f.load(0, pos)
    f.start(0, 40, noise=False)
    f.search(np.array([0]), result_evaluator(pos.komi))
    moves, pi = f.improved_policy(0)
    root = f.info[0, mcts.ROOT]
    first, count = f.tree[0][0, root], f.tree[1][0, root]
    n = f.tree[6][0, first:first + count]
    q = np.where(n > 0, f.tree[7][0, first:first + count] / np.maximum(n, 1), np.nan)
    best = np.nanargmax(q)
    assert np.argmax(pi) == best
    unvisited = pi[n == 0]
    assert np.allclose(unvisited, unvisited[0]) if len(unvisited) else True


def test_quantise_policy():
    moves = np.array([3, 7, 9, 25], np.int16)
    m, w = quantise_policy(moves, np.array([0.5006, 0.4992, 0.0001, 0.0001]), played=25, total=1000)
    assert m.tolist() == [3, 7, 25] and w.tolist() == [501, 499, 1]  # 9 dropped, the played 25 kept
    m, w = quantise_policy(moves, np.array([1, 1, 1, 0.0]) / 3, played=3, total=1000)
    assert m.tolist() == [3, 7, 9] and w.sum() == 1000 and sorted(w.tolist()) == [333, 333, 334]


# --- self-play --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [5, 9])
def test_selfplay_under_gumbel_end_to_end(size):
    search = SearchConfig(algorithm="gumbel", visits=16, cheap_visits=4, full_search_prob=0.5)
    cfg = SelfPlayConfig(board_size=size, komi=0.5, parallel_games=4, batch_size=4, resign_min_moves=4,
                         resign_max_share=1.0, search=search)
    runner = SelfPlayRunner(cfg, random_evaluator(11) if size == 5 else uniform_evaluator, seed=3)
    records = runner.play(3 if size == 5 else 1)
    for r in records:
        back = decode_batch(encode_batch([r]))[0]
        assert back.moves.tolist() == r.moves.tolist()
        pos = Position(size, 0.5)
        for t, m in enumerate(r.moves.tolist()):
            children, counts = r.visits_at(t)
            assert m in children.tolist()  # the played move is always in the record
            assert set(children.tolist()) <= set(legal_moves(pos).tolist())
            if r.full_search[t]:
                assert POLICY_TARGET_TOTAL <= counts.sum() <= POLICY_TARGET_TOTAL + 1
                pi = back.policy_target(t)
                assert pi.sum() == pytest.approx(1.0) and pi[m] > 0
            else:
                assert counts.sum() == 4  # cheap searches keep their root visits
            pos.play(m)
        assert r.full_search.any() and not r.full_search.all()
    assert runner.stats.games >= len(records)


def test_selfplay_gumbel_noise_only_where_moves_are_sampled():
    # final temperature 0 and no full searches: cheap searches after the opening draw no noise
    search = SearchConfig(algorithm="gumbel", visits=8, cheap_visits=8, full_search_prob=0.0, temperature_moves=2)
    cfg = SelfPlayConfig(board_size=5, komi=0.5, parallel_games=2, batch_size=2, search=search)
    runner = SelfPlayRunner(cfg, uniform_evaluator, seed=1)
    noise = []
    while runner.stats.moves < 6:
        noise.extend(int(runner.forest.gum[2][g, gumbel.NOISE]) for g in range(2) if
                     not runner.forest.searched(np.array([g]))[0])
        runner.step()
    assert noise[0] == 1 and noise[-1] == 0


# --- settings ---------------------------------------------------------------------------


def test_algorithm_and_max_considered_from_yaml_and_environment(tmp_path, monkeypatch):
    path = tmp_path / "azgo.yaml"
    path.write_text(yaml.safe_dump({"search": {"algorithm": "gumbel", "max_considered": 8}}))
    s = load_settings(path)
    assert s.search.algorithm == "gumbel" and s.search_config().algorithm == "gumbel"
    assert s.search_config().max_considered == 8 and s.selfplay_config().search.gumbel
    monkeypatch.setenv("AZGO_SEARCH__ALGORITHM", "puct")
    monkeypatch.setenv("AZGO_SEARCH__MAX_CONSIDERED", "4")
    s = load_settings(path)
    assert s.search_config().algorithm == "puct" and s.search_config().max_considered == 4
    assert load_settings(None).search_config().algorithm == "puct"  # the default stays PUCT


@pytest.mark.parametrize("field, value, words", [("algorithm", "alphabeta", "search.algorithm"),
                                                 ("max_considered", 0, "search.max_considered")])
def test_bad_search_values_are_refused(tmp_path, field, value, words):
    path = tmp_path / "azgo.yaml"
    path.write_text(yaml.safe_dump({"search": {field: value}}))
    with pytest.raises(ConfigError, match=words):
        load_settings(path)


def test_search_config_refuses_bad_values():
    with pytest.raises(ValueError, match="algorithm must be one of"):
        SearchConfig(algorithm="mcts")
    with pytest.raises(ValueError, match="max_considered"):
        SearchConfig(algorithm="gumbel", max_considered=0)
