"""Regressions from review: misuse of the forest is refused, and no finished game is dropped."""

import numpy as np
import pytest

from azgo_core import coords
from azgo_core.position import Position
from azgo_core.search import Forest, SearchConfig, uniform_evaluator
from azgo_core.selfplay import SelfPlayConfig, SelfPlayRunner


def test_play_keeps_games_beyond_the_count_for_the_next_call():
    runner = SelfPlayRunner(
        SelfPlayConfig(board_size=5, parallel_games=16, batch_size=16, search=SearchConfig(visits=8, cheap_visits=4)),
        uniform_evaluator, seed=5,
    )
    got = [r for _ in range(12) for r in runner.play(1)]
    assert len(got) == 12
    # every game the runner finished was either returned or is waiting for the next call
    assert runner.stats.games == len(got) + len(runner._finished)
    assert len({r.seed for r in got}) == len(got)


def test_search_of_a_finished_game_is_refused_not_spun_forever():
    forest = Forest(1, 5, SearchConfig(visits=8, cheap_visits=8))
    pos = Position(5)
    pos.play(25)
    pos.play(25)
    forest.load(0, pos)
    with pytest.raises(ValueError, match="over"):
        forest.start(0, 8, noise=False)
    with pytest.raises(ValueError, match="over"):
        forest.search(np.array([0]), uniform_evaluator)


def test_forest_play_refuses_illegal_and_finished():
    forest = Forest(2, 5, SearchConfig(visits=8, cheap_visits=8), move_cap=3)
    c3 = coords.from_gtp(5, "C3")
    forest.play(0, c3)
    with pytest.raises(ValueError, match="occupied"):
        forest.play(0, c3)
    with pytest.raises(ValueError, match="off a 5x5"):
        forest.play(0, 26)
    forest.play(0, 25)
    forest.play(0, 25)
    with pytest.raises(ValueError, match="over"):
        forest.play(0, 25)
    # the neighbouring game's superko history was never touched
    assert forest.games[2][1, 1:].sum() == 0
