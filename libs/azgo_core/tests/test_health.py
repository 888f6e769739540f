"""Training health (``azgo_core.health``): the figures of hand-made games, and the collapse warning."""

from __future__ import annotations

import math

import pytest

from azgo_core.health import BLACK, WHITE, HealthWindow, game_health, summarise
from azgo_core.records import GameRecord

N = 5
PASS = N * N


def record(moves, winner, resigned=False, values=None, generation=0):
    values = values if values is not None else [0.0] * len(moves)
    return GameRecord.from_visits(N, 0.5, moves, [([m], [1]) for m in moves], root_values=values, winner=winner,
                                  resigned=resigned, score=math.nan if resigned else {BLACK: 1.5, WHITE: -1.5, 0: 0.0}[winner],
                                  model_generation=generation, worker_id="w")


def test_one_games_figures():
    # white (moves 2, 4, ...) passes first, at move 4; black answers, then both pass
    g = game_health(record([12, 6, 7, PASS, 8, PASS, PASS], BLACK), resign_at=-0.9, min_moves=0)
    assert (g.winner, g.resigned, g.moves, g.first_pass_colour, g.first_pass_move) == (BLACK, False, 7, WHITE, 4)
    assert not g.fell_below and not g.false_resignation
    g = game_health(record([12, 6, 7], WHITE, resigned=True), resign_at=-0.9, min_moves=0)
    assert g.resigned and g.first_pass_colour == 0 and g.first_pass_move == 0


@pytest.mark.parametrize("low_at, winner, false", [(2, BLACK, True), (3, BLACK, False), (3, WHITE, True), (0, WHITE, None)])
def test_would_be_false_resignations(low_at, winner, false):
    """A played-out game where a side's own value fell below the threshold: false if that side won."""
    values = [0.0] * 8
    values[low_at] = -0.95  # move low_at + 1: black's when low_at is even
    g = game_health(record([12, 6, 7, 8, 11, 13, 16, 18], winner, values=values), resign_at=-0.9, min_moves=1)
    if false is None:  # before min_moves: nobody could have resigned there
        assert not g.fell_below
    else:
        assert g.fell_below and g.false_resignation == false


def test_aggregates():
    games = [game_health(record([12, PASS, PASS], BLACK), -0.9, 0),
             game_health(record([12, 6, 7, 8], WHITE, resigned=True), -0.9, 0),
             game_health(record([12, 6, PASS, PASS], BLACK, generation=1), -0.9, 0),
             game_health(record([12, 6], 0), -0.9, 0)]
    h = summarise(games)
    assert h.games == 4 and h.black_win_share == pytest.approx(2 / 3) and h.resigned_share == 0.25
    assert h.mean_moves == pytest.approx(13 / 4)
    assert h.white_passes_first_share == 0.5 and h.first_pass_move == 2.5
    assert math.isnan(h.false_resignation_rate)  # no played-out game fell below the threshold
    assert h.as_dict()["false_resignation_rate"] is None
    assert math.isnan(summarise([]).black_win_share)


def test_the_collapse_warning_fires_on_a_one_sided_window():
    one_sided = HealthWindow(N, resign_at=-0.9, window=100)
    moves = [12, 6, 7, 8, 11, 13, 16, 18, 17, 19, 1, 3, 2]  # 13 moves: longer than N*N/2
    one_sided.add([record(moves, BLACK, generation=g // 20) for g in range(49)])
    assert one_sided.warnings() == []  # too few games to judge
    one_sided.add([record(moves, WHITE if g % 20 == 0 else BLACK) for g in range(51)])
    (warning,) = one_sided.warnings()
    assert warning.startswith("black won 97% of the last 100 self-play games")
    assert list(one_sided.generations()) == [0, 1, 2]

    short = HealthWindow(N, resign_at=-0.9, window=100)
    short.add([record([12, 6, 7], BLACK if g % 2 else WHITE, resigned=True) for g in range(60)])
    (warning,) = short.warnings()
    assert warning.startswith("self-play games average 3 moves") and "100% resigned" in warning

    healthy = HealthWindow(N, resign_at=-0.9, window=100)
    healthy.add([record(moves, BLACK if g % 2 else WHITE) for g in range(100)])
    assert healthy.warnings() == [] and healthy.window().black_win_share == 0.5
