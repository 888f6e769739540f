"""Records that lie (about visits, results, rules) are refused by ``verify.check_record`` and by
the compiled ``batchcheck``, naming what is false; self-play never produces one."""

from __future__ import annotations

import math

import msgpack
import numpy as np
import pytest

from azgo_core.batchcheck import scan_batch
from azgo_core.position import Position
from azgo_core.records import BLACK, MAX_VISITS, WHITE, GameRecord, RecordError, decode_batch, encode_batch
from azgo_core.search import SearchConfig, uniform_evaluator
from azgo_core.selfplay import SelfPlayConfig, SelfPlayRunner
from azgo_core.verify import check_record

N = 5
PASS = N * N
# black captures at B5... a 5x5 game whose 10th move (white) could recapture the ko at B4 (6): superko
KO = [1, 2, 5, 6, 11, 8, 24, 12, 7]
# after these black may not play A5 (0): suicide
SUICIDE = [1, 0, 5, 24, 6]


def record(moves, visits=None, **kw) -> GameRecord:
    """``moves`` with one visit on each played move unless ``visits`` says otherwise (a dict move index ->
    (children, counts)); the result the replay gives unless ``kw`` says otherwise."""
    position = Position(N, 7.5)
    for m in moves:
        position.play(m)
    result = (dict(winner=position.winner(), score=position.score()) if position.is_over
              else dict(winner=3 - position.to_play, resigned=True))
    per_move = [([m], [1]) for m in moves]
    for t, v in (visits or {}).items():
        per_move[t] = v
    return GameRecord.from_visits(N, 7.5, moves, per_move, **{**result, **kw})


def refused(r: GameRecord, message: str) -> None:
    """Both checks refuse ``r``; the definition's message matches ``message``."""
    with pytest.raises(RecordError, match=message):
        check_record(r)
    assert scan_batch(encode_batch([r]), N, 10, 1 << 20) is None


def accepted(r: GameRecord) -> None:
    check_record(r)
    assert scan_batch(encode_batch([r]), N, 10, 1 << 20) is not None


def ended() -> list[int]:
    """A 5x5 game ended by two passes: black walls column C, white column E; D is neutral. Black 15, white 5."""
    return [2, 4, 7, 9, 12, 14, 17, 19, 22, 24, PASS, PASS]


def test_honest_records_of_each_kind_are_accepted():
    accepted(record(ended()))
    accepted(record(KO + [PASS]))
    accepted(record(SUICIDE))
    accepted(record([]))  # black resigned before moving: white won
    over = record(ended())
    assert over.score == 15 - 5 - 7.5 and over.winner == BLACK and not over.resigned


@pytest.mark.parametrize("case, message", [
    ("flipped", "score -2.5 claimed, board gives 2.5 \\(area 10, komi 7.5\\)"),
    ("off by a capture", "score 4.5 claimed, board gives 2.5"),
    ("draw", "score 0 claimed, board gives 2.5"),
    ("no count", "ended by two passes but claims no counted score"),
    ("resigned after passes", "claims a resignation, but the game ended by two passes"),
    ("resigned, wrong winner", "white claimed to win by resignation, but white was to move"),
    ("unfinished", "no result: the game neither ended"),
    ("unfinished with a count", "no result"),
])
def test_false_results_are_refused(case, message):
    over = ended()
    r = {
        "flipped": lambda: record(over, winner=WHITE, score=-2.5),
        "off by a capture": lambda: record(over, score=4.5),
        "draw": lambda: record(over, winner=0, score=0.0),
        "no count": lambda: record(over, score=math.nan),
        "resigned after passes": lambda: record(over, score=math.nan, resigned=True),
        "resigned, wrong winner": lambda: record([0], winner=WHITE),
        "unfinished": lambda: record([0, 1], winner=0, resigned=False),
        "unfinished with a count": lambda: record([0, 1], winner=WHITE, score=-7.5, resigned=False),
    }[case]()
    refused(r, message)


@pytest.mark.parametrize("score", [1e300, 2**64 - 1, -26.0 - 7.5 - 0.5])
def test_absurd_scores_are_refused_when_decoded(score):
    wire = msgpack.unpackb(encode_batch([record(ended())], compress=False), raw=False)
    wire["g"][0]["s"] = score
    wire["g"][0]["w"] = BLACK if score > 0 else WHITE
    blob = msgpack.packb(wire, use_bin_type=True)
    with pytest.raises(RecordError, match="field 'score': .* is beyond any score on a 5x5 board"):
        decode_batch(blob)
    assert scan_batch(blob, N, 10, 1 << 20) is None


@pytest.mark.parametrize("case, message", [
    ("occupied", "move 3: visits on C5, which was not a legal move there \\(occupied\\)"),
    ("suicide", "move 6: visits on A5, which was not a legal move there \\(suicide\\)"),
    ("ko", "move 10: visits on B4, which was not a legal move there \\(superko\\)"),
    ("zero total", "move 2: a full search \\(a policy target\\) with no visits"),
    ("absurd total", f"move 1: {2 * MAX_VISITS} visits in all, above the limit of {MAX_VISITS}"),
    ("listed twice", "move 2: child B5 listed more than once"),
    ("never visited", "move 2: played B5, which its search never visited"),
    ("visited zero times", "move 2: played B5, which its search never visited"),
])
def test_false_visits_are_refused(case, message):
    r = {
        "occupied": lambda: record([2, 3, 4], {2: ([4, 2], [3, 1])}),
        "suicide": lambda: record(SUICIDE + [PASS], {5: ([PASS, 0], [1, 1])}),
        "ko": lambda: record(KO + [PASS], {9: ([PASS, 6], [5, 5])}),
        "zero total": lambda: record([0, 1], {1: ([1], [0])}),
        "absurd total": lambda: record([0, 1], {0: ([0, 1], [MAX_VISITS, MAX_VISITS])}),
        "listed twice": lambda: record([0, 1], {1: ([1, 1], [1, 1])}),
        "never visited": lambda: record([0, 1], {1: ([2], [1])}),
        "visited zero times": lambda: record([0, 1], {1: ([1, 2], [0, 4])}),
    }[case]()
    refused(r, message)


def test_a_cheap_search_may_record_no_visits_but_a_count_above_the_limit_is_refused():
    cheap = GameRecord.from_visits(N, 7.5, [0], [([], [])], full_search=[False], winner=BLACK, resigned=True)
    accepted(cheap)
    with pytest.raises(RecordError, match="field 'visit_counts': value 1048577 is above 1048576"):
        record([0], {0: ([0], [MAX_VISITS + 1])})
    accepted(record([0], {0: ([0, 1], [MAX_VISITS - 1, 1])}))  # a total of exactly 2**20: a Gumbel policy's bound


@pytest.mark.parametrize("rules", ["japanese", "x", "Tromp-Taylor"])
def test_rules_the_project_does_not_implement_are_refused(rules):
    with pytest.raises(RecordError, match=f"field 'rules': '{rules}' is not implemented \\(only tromp-taylor\\)"):
        record([0], rules=rules)
    wire = msgpack.unpackb(encode_batch([record([0])], compress=False), raw=False)
    wire["g"][0]["r"] = rules
    assert scan_batch(msgpack.packb(wire, use_bin_type=True), N, 10, 1 << 20) is None


@pytest.mark.parametrize("size, search", [
    (5, SearchConfig(visits=8, cheap_visits=4, full_search_prob=0.5)),
    (5, SearchConfig(visits=6, cheap_visits=2, full_search_prob=0.3, resign_threshold=0.5, no_resign_share=0.3,
                     resign_calibration_games=0)),
    (7, SearchConfig(visits=4, cheap_visits=2, full_search_prob=1.0)),
    # Gumbel's targets are its improved policy pi' as integer weights, over every legal move
    (5, SearchConfig(algorithm="gumbel", visits=8, cheap_visits=4, full_search_prob=0.5)),
    (7, SearchConfig(algorithm="gumbel", visits=6, cheap_visits=2, full_search_prob=0.5, resign_threshold=0.5,
                     no_resign_share=0.3, resign_calibration_games=0)),
])
def test_selfplay_records_tell_the_truth(size, search):
    cfg = SelfPlayConfig(board_size=size, komi=7.5, parallel_games=4, batch_size=8, resign_min_moves=3, search=search)
    games = SelfPlayRunner(cfg, uniform_evaluator, model_generation=1, worker_id="w", seed=size).play(8)
    for r in games:
        check_record(r)
    assert scan_batch(encode_batch(games), size, 10, 1 << 20) is not None
    assert len({(r.resigned, r.winner) for r in games}) >= 2  # more than one kind of ending was checked
    if search.resign_threshold > 0:
        assert any(r.resigned for r in games) and any(not r.resigned for r in games)


def test_the_passes_of_an_ended_game_are_visited():
    r = record(ended())
    children, counts = r.visits_at(r.num_moves - 1)
    assert children.tolist() == [PASS] and np.all(counts == 1)
