"""The rating fit: known results give known Elo, symmetric results equal ratings, intervals shrink with games."""

from __future__ import annotations

import math

import numpy as np
import pytest

from azgo_core.rating import ELO_PER_NAT, elo_difference, fit_ratings, score_interval, tally


def games(player: str, opponent: str, wins: int, draws: int = 0, losses: int = 0) -> list[tuple[str, str, float]]:
    return [(player, opponent, 1.0)] * wins + [(player, opponent, 0.5)] * draws + [(player, opponent, 0.0)] * losses


def test_three_to_one_is_191_elo():
    # p = 0.75 -> r = ln 3; Elo = 400 log10(3) = 190.85
    ratings = fit_ratings(games("a", "b", 75, losses=25), anchor="b", prior_draws=0)
    assert ratings.elo("b") == 0.0
    assert ratings.elo("a") == pytest.approx(400 * math.log10(3), abs=1e-6)
    assert ratings["a"].games == 100 and ratings["a"].points == 75


def test_anchor_elo_shifts_everything():
    ratings = fit_ratings(games("a", "b", 75, losses=25), anchor="a", anchor_elo=1000, prior_draws=0)
    assert ratings.elo("a") == 1000
    assert ratings.elo("b") == pytest.approx(1000 - 400 * math.log10(3), abs=1e-6)


def test_a_chain_of_known_gaps_adds_up():
    # a beats b 3:1, b beats c 3:1, no a-c games: the fit puts c two gaps below a
    results = games("a", "b", 300, losses=100) + games("b", "c", 300, losses=100)
    ratings = fit_ratings(results, anchor="c", prior_draws=0)
    gap = 400 * math.log10(3)
    assert ratings.elo("b") == pytest.approx(gap, abs=1e-6)
    assert ratings.elo("a") == pytest.approx(2 * gap, abs=1e-6)
    assert ratings["a"].high - ratings["a"].low > ratings["b"].high - ratings["b"].low  # two links of doubt


def test_consistent_round_robin_is_recovered():
    # expected scores generated from true ratings; the maximum likelihood fit returns them exactly
    true = {"x": 0.0, "y": 150.0, "z": 420.0}
    results = []
    for p in true:
        for q in true:
            if p < q:
                wins = round(1000 / (1 + 10 ** ((true[q] - true[p]) / 400)))
                results += games(p, q, wins, losses=1000 - wins)
    ratings = fit_ratings(results, anchor="x", prior_draws=0)
    for name, elo in true.items():
        assert ratings.elo(name) == pytest.approx(elo, abs=1.5)  # rounding of the win counts


def test_symmetric_results_give_equal_ratings():
    results = games("a", "b", 10, losses=10) + games("b", "c", 7, draws=2, losses=7) + games("a", "c", 5, losses=5)
    ratings = fit_ratings(results, anchor="a")
    assert ratings.elo("b") == pytest.approx(0.0, abs=1e-9)
    assert ratings.elo("c") == pytest.approx(0.0, abs=1e-9)
    assert ratings["b"].low < 0 < ratings["b"].high


def test_draws_count_half():
    with_draws = fit_ratings(games("a", "b", 10, draws=20, losses=0), anchor="b", prior_draws=0)
    as_halves = fit_ratings(games("a", "b", 20, losses=10), anchor="b", prior_draws=0)
    assert with_draws.elo("a") == pytest.approx(as_halves.elo("a"), abs=1e-9)


def test_intervals_shrink_with_more_games():
    widths = []
    for n in (10, 40, 160):
        r = fit_ratings(games("a", "b", 3 * n, losses=n), anchor="b", prior_draws=0)
        widths.append(r["a"].high - r["a"].low)
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[1] == pytest.approx(2.0, rel=1e-6)  # 1 / sqrt(games)
    # and the interval is +-1.96 standard errors of the binomial: se(r) = 1/sqrt(n p q)
    n, p = 640, 0.75
    assert widths[2] == pytest.approx(2 * 1.959964 * ELO_PER_NAT / math.sqrt(n * p * (1 - p)), rel=1e-5)


def test_the_prior_keeps_an_unbeaten_player_finite():
    ratings = fit_ratings(games("gnugo", "random", 20), anchor="random", prior_draws=1.0)
    # 20.5 points of 21: the plain fit would be infinite
    assert ratings.elo("gnugo") == pytest.approx(elo_difference(20.5 / 21), abs=1e-6)
    assert math.isfinite(ratings["gnugo"].high)


def test_without_a_prior_an_unbeaten_player_is_capped_not_an_error():
    ratings = fit_ratings(games("gnugo", "random", 20), anchor="random", prior_draws=0)
    assert ratings.elo("gnugo") > 3000 and math.isfinite(ratings.elo("gnugo"))


def test_more_wins_rank_higher():
    results = games("g1", "random", 6, losses=4) + games("g2", "g1", 7, losses=3) + games("g3", "g2", 8, losses=2)
    ratings = fit_ratings(results, anchor="random")
    elo = [ratings.elo(n) for n in ("random", "g1", "g2", "g3")]
    assert elo == sorted(elo) and elo[0] == 0


def test_a_player_without_a_chain_to_the_anchor_is_unrated():
    results = games("a", "b", 3, losses=1) + games("c", "d", 2, losses=2)
    ratings = fit_ratings(results, anchor="a")
    assert math.isnan(ratings.elo("c")) and math.isnan(ratings.elo("d"))
    assert math.isfinite(ratings.elo("b"))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="anchor 'z'"):
        fit_ratings(games("a", "b", 1), anchor="z")
    with pytest.raises(ValueError, match="score 2"):
        fit_ratings([("a", "b", 2)])
    with pytest.raises(ValueError, match="against itself"):
        fit_ratings([("a", "a", 1.0)])
    with pytest.raises(ValueError, match="no results"):
        fit_ratings([])


def test_tally_counts_both_sides():
    names, W, N = tally(games("a", "b", 2, draws=1, losses=1))
    assert names == ["a", "b"]
    assert np.array_equal(N, [[0, 4], [4, 0]])
    assert np.array_equal(W, [[0, 2.5], [1.5, 0]])


def test_score_interval_is_wilson():
    score, low, high = score_interval(15, 0, 5)
    assert score == 0.75
    # Wilson 95% for 15/20: (0.5313, 0.8881)
    assert low == pytest.approx(0.5313, abs=1e-4) and high == pytest.approx(0.8881, abs=1e-4)
    score, low, high = score_interval(20, 0, 0)
    assert score == 1.0 and high == 1.0 and low == pytest.approx(0.8389, abs=1e-4)
    assert score_interval(5, 10, 5)[0] == 0.5


def test_elo_difference():
    assert elo_difference(0.5) == 0
    assert elo_difference(0.75) == pytest.approx(190.85, abs=0.01)
    assert elo_difference(1.0) == math.inf and elo_difference(0.0) == -math.inf
