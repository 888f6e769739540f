"""The self-play runner (``azgo_core.selfplay``): one network call per step with one leaf per
game still searching, records that replay legally with ``Position``, playout-cap
randomization, resignation, temperature, model swaps and the record wire format.

Small configurations (5x5, a handful of visits) so the whole file runs in seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from azgo_core import mcts
from azgo_core.position import BLACK, WHITE, Position
from azgo_core.records import decode_batch, encode_batch
from azgo_core.search import SearchConfig, uniform_evaluator
from azgo_core.selfplay import SelfPlayConfig, SelfPlayRunner


def make_config(size=5, parallel_games=6, batch_size=8, komi=0.5, move_cap=None, resign_min_moves=4,
                resign_max_share=1.0, **search):
    # a fixed resignation threshold unless a test asks for the calibration
    search = dict(dict(visits=10, cheap_visits=3, full_search_prob=0.5, resign_calibration_games=0), **search)
    return SelfPlayConfig(board_size=size, komi=komi, parallel_games=parallel_games, batch_size=batch_size,
                          move_cap=move_cap, resign_min_moves=resign_min_moves, resign_max_share=resign_max_share,
                          search=SearchConfig(**search))


class Counting:
    """Wraps an evaluator; counts calls and rows."""

    def __init__(self, evaluate=uniform_evaluator):
        self.evaluate = evaluate
        self.sizes = []

    def __call__(self, planes):
        self.sizes.append(len(planes))
        return self.evaluate(planes)

    @property
    def calls(self):
        return len(self.sizes)


def side_lost_evaluator(loser):
    """Value -1 whenever ``loser`` is to move, +1 otherwise; passing is all but ruled out."""

    def evaluate(planes):
        b, n = len(planes), planes.shape[-1]
        black_to_move = planes[:, -1, 0, 0] == 1
        to_move = np.where(black_to_move, BLACK, WHITE)
        logits = np.zeros((b, n * n + 1), np.float32)
        logits[:, -1] = -30.0
        return logits, np.where(to_move == loser, -1.0, 1.0).astype(np.float32)

    return evaluate


def finish(runner, n):
    """Step until at least ``n`` games have finished; returns every game finished meanwhile, so
    that the runner's stats count exactly these."""
    out = []
    while len(out) < n:
        out.extend(runner.step())
    return out


def replay(record, move_cap=None):
    pos = Position(record.board_size, record.komi, move_cap)
    for t, m in enumerate(record.moves):
        assert pos.legal(int(m)), f"move {t} ({m}) is illegal: {pos.why_illegal(int(m))}"
        pos.play(int(m))
    return pos


def visit_sums(records):
    """(full_search flag, root visits summed) of every move of ``records``."""
    return [(bool(r.full_search[t]), int(r.visits_at(t)[1].sum())) for r in records for t in range(r.num_moves)]


# --- one network call per step ------------------------------------------------------------


def run_steps_watching_leaves(cfg, steps, seed=1):
    """Step a runner ``steps`` times; at every network call note which games have a pending leaf
    and which have reached their target. Returns the runner and, per step, (todo, calls)."""
    calls = []

    def evaluate(planes):
        f = runner.forest
        roots = f.info[:, mcts.ROOT]
        leaves = np.flatnonzero(f.info[:, mcts.PENDING] >= 0)
        done = f.tree[2][np.arange(f.G), roots] - 1 >= f.targets
        calls.append((len(planes), set(leaves.tolist()), done.copy()))
        return uniform_evaluator(planes)

    runner = SelfPlayRunner(cfg, evaluate, seed=seed)
    log = []
    for _ in range(steps):
        todo = set(runner.forest.pending(runner.gids).tolist())
        before = len(calls)
        runner.step()
        log.append((todo, calls[before:]))
    return runner, log


def test_one_call_per_step_with_one_leaf_per_searching_game():
    # a short move cap puts terminal positions inside the trees: those descents need no network
    cfg = make_config(parallel_games=6, batch_size=8, move_cap=14)
    runner, log = run_steps_watching_leaves(cfg, 300)
    full_batches = terminal_only = 0
    for todo, calls in log:
        assert len(calls) <= 1
        if not calls:
            continue
        rows, leaves, done = calls[0]
        assert 1 <= rows <= cfg.batch_size
        assert rows == len(leaves)  # one row per game with a leaf
        assert leaves <= todo  # only games still searching
        for g in todo - leaves:  # a searching game without a leaf finished on exact results
            assert done[g]
            terminal_only += 1
        full_batches += rows == cfg.parallel_games
    assert full_batches > 100
    assert terminal_only > 0
    assert runner.stats.games > 10
    assert runner.stats.nn_evals == sum(c[0] for _, calls in log for c in calls)


def test_batches_never_exceed_batch_size():
    cfg = make_config(parallel_games=10, batch_size=4, move_cap=14)
    runner, log = run_steps_watching_leaves(cfg, 150)
    assert runner.forest.batch.shape[0] == 4
    split = 0
    for todo, calls in log:
        assert len(calls) <= math.ceil(len(todo) / 4)
        seen = set()
        for rows, leaves, _ in calls:
            assert 1 <= rows <= 4 and rows == len(leaves)
            assert leaves <= todo and not leaves & seen  # at most one leaf per game per step
            seen |= leaves
        split += len(calls) == 3
    assert split > 50


# --- finished games -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def played():
    cfg = make_config(parallel_games=8, batch_size=8, visits=12, cheap_visits=4, no_resign_share=0.3,
                      resign_threshold=-0.8)
    runner = SelfPlayRunner(cfg, uniform_evaluator, model_generation=5, worker_id="test/0", seed=11)
    records = runner.play(40)
    return cfg, runner, records


def test_records_replay_legally_with_their_results(played):
    cfg, runner, records = played
    assert len(records) == 40
    resigned = [r for r in records if r.resigned]
    counted = [r for r in records if not r.resigned]
    assert resigned and counted
    for r in records:
        pos = replay(r)
        assert r.board_size == 5 and r.komi == 0.5 and r.num_moves >= 1
        assert r.model_generation == 5 and r.worker_id == "test/0"
        for t in range(r.num_moves):  # the move played was one of the searched ones
            assert r.moves[t] in r.visits_at(t)[0]
        if r.resigned:
            assert not pos.is_over
            assert r.num_moves >= cfg.resign_min_moves
            assert r.winner == 3 - pos.to_play  # the side to move resigned
            assert math.isnan(r.score)
        else:
            assert pos.is_over
            assert r.score == pos.score()
            assert r.winner == pos.winner()
    assert len({r.seed for r in records}) == len(records)
    assert runner.stats.resignations >= len(resigned)


def test_records_round_trip_through_the_wire_format(played):
    _, _, records = played
    for compress in (True, False):
        back = decode_batch(encode_batch(records, compress=compress))
        assert len(back) == len(records)
        for a, b in zip(records, back):
            assert a == b
            assert a.resigned == b.resigned and (math.isnan(b.score) if a.resigned else a.score == b.score)


# --- playout cap ------------------------------------------------------------------------------


@pytest.mark.parametrize("reuse", [False, True])
def test_playout_cap_share_and_visits(reuse):
    p = 0.3
    cfg = make_config(parallel_games=16, batch_size=16, visits=12, cheap_visits=3, full_search_prob=p,
                      reuse_tree=reuse, no_resign_share=1.0)
    runner = SelfPlayRunner(cfg, uniform_evaluator, seed=2 + reuse)
    records = runner.play(60)
    moves = visit_sums(records)
    n = len(moves)
    assert n > 1500
    share = sum(full for full, _ in moves) / n
    assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / n), (share, n)
    full_sums = [s for full, s in moves if full]
    cheap_sums = [s for full, s in moves if not full]
    if reuse:
        assert min(full_sums) >= 12 and min(cheap_sums) >= 3
        assert max(cheap_sums) > 3  # some cheap searches started from a reused subtree
    else:
        assert set(full_sums) == {12} and set(cheap_sums) == {3}


# --- resignation ----------------------------------------------------------------------------


@pytest.mark.parametrize("min_moves", [4, 5])
@pytest.mark.parametrize("loser", [BLACK, WHITE])
def test_the_lost_side_resigns_at_its_first_chance(loser, min_moves):
    cfg = make_config(parallel_games=4, batch_size=4, resign_min_moves=min_moves, no_resign_share=0.0)
    runner = SelfPlayRunner(cfg, side_lost_evaluator(loser), seed=4)
    records = runner.play(8)
    # black moves when an even number of moves has been played
    first_turn = min_moves if (min_moves % 2 == 0) == (loser == BLACK) else min_moves + 1
    for r in records:
        assert r.resigned and r.winner == 3 - loser and math.isnan(r.score)
        assert r.num_moves == first_turn
        assert replay(r).to_play == loser
        assert r.root_values[first_turn - 1] > 0.9  # the winner's own view of its last move
    assert runner.stats.resignations == runner.stats.games >= 8


@pytest.mark.parametrize("loser", [BLACK, WHITE])
def test_no_resign_share_one_plays_every_game_out(loser):
    cfg = make_config(parallel_games=4, batch_size=4, no_resign_share=1.0)
    runner = SelfPlayRunner(cfg, side_lost_evaluator(loser), seed=5)
    records = finish(runner, 12)
    assert not any(r.resigned for r in records)
    assert all(replay(r).is_over for r in records)
    s = runner.stats
    assert s.games == len(records) and s.resignations == 0
    assert s.no_resign_games == s.games
    # every game would have resigned for ``loser``: those it won anyway were false resignations
    assert s.would_resign_games == s.games
    assert 0 < s.false_resignations == sum(r.winner == loser for r in records) < s.games


def test_threshold_below_every_value_never_resigns():
    cfg = make_config(parallel_games=4, batch_size=4, no_resign_share=0.0, resign_threshold=-1.0)
    runner = SelfPlayRunner(cfg, side_lost_evaluator(BLACK), seed=6)
    records = runner.play(8)
    assert not any(r.resigned for r in records)
    assert runner.stats.resignations == 0 and runner.stats.false_resignations == 0


def test_threshold_above_every_value_resigns_at_the_minimum():
    """Values lie in [-1, 1]: a threshold above 1 resigns every game as soon as allowed."""
    cfg = make_config(parallel_games=4, batch_size=4, no_resign_share=0.0, resign_threshold=1.0, resign_min_moves=6)
    runner = SelfPlayRunner(cfg, uniform_evaluator, seed=7)
    records = runner.play(8)
    for r in records:
        assert r.resigned and r.num_moves == 6 and r.winner == WHITE  # black to move after 6 moves


# --- move choice ---------------------------------------------------------------------------


def test_most_visited_move_after_the_opening():
    cfg = make_config(parallel_games=8, batch_size=8, visits=16, cheap_visits=16, temperature=1.0,
                      temperature_moves=6, final_temperature=0.0, no_resign_share=1.0)
    records = SelfPlayRunner(cfg, uniform_evaluator, seed=8).play(16)
    sampled = 0
    for r in records:
        for t in range(r.num_moves):
            children, counts = r.visits_at(t)
            most = int(children[np.argmax(counts)])
            if t >= 6:
                assert r.moves[t] == most, (t, children, counts)
            else:
                sampled += r.moves[t] != most
    assert sampled > 10  # the opening really samples


# --- model swaps ---------------------------------------------------------------------------


def test_set_model_swaps_the_evaluator_between_moves():
    cfg = make_config(parallel_games=4, batch_size=4, no_resign_share=1.0)
    old, new = Counting(), Counting()
    runner = SelfPlayRunner(cfg, old, model_generation=3, seed=9)
    first = finish(runner, 2)
    assert {r.model_generation for r in first} == {3} and new.calls == 0
    in_progress = [len(game.moves) for game in runner.games]
    assert max(in_progress) > 0  # the swap comes in the middle of games
    old_calls = old.calls
    runner.set_model(new, 4)
    for g in range(cfg.parallel_games):  # the old trees are gone
        assert len(runner.forest.root_visits(g)[0]) == 0
    later = finish(runner, cfg.parallel_games + 2)  # every game in progress at the swap among them
    assert old.calls == old_calls
    assert new.calls > 0
    assert [r.model_generation for r in later] == [4] * len(later)
    for r in later:
        replay(r)


def test_a_resignation_right_after_set_model_carries_the_new_generation():
    cfg = make_config(parallel_games=1, batch_size=1, no_resign_share=0.0, resign_threshold=1.0, resign_min_moves=4)
    runner = SelfPlayRunner(cfg, uniform_evaluator, model_generation=0, seed=10)
    while len(runner.games[0].moves) < 4:  # four moves by generation 0
        assert not runner.step()
    runner.set_model(uniform_evaluator, 1)
    (record,) = finish(runner, 1)  # generation 1's first search resigns
    assert record.resigned and record.num_moves == 4
    assert record.model_generation == 1


# --- resignation calibration ------------------------------------------------------------------


def test_calibration_keeps_false_resignations_at_the_target():
    from azgo_core.selfplay import ResignCalibration

    cal = ResignCalibration(ceiling=-0.5, target=0.05, min_games=20)
    rng = np.random.default_rng(0)
    minima = rng.uniform(-1.0, 0.0, size=200)
    for m in minima[:19]:
        cal.add(WHITE, m)
    assert cal.threshold[WHITE] is None  # too few games: nobody resigns
    for m in minima[19:]:
        cal.add(WHITE, m)
    false = np.mean(minima < cal.threshold[WHITE])  # winners that would have resigned
    assert false <= 0.05 and cal.threshold[WHITE] < -0.9
    cal = ResignCalibration(ceiling=-0.8, min_games=1)
    cal.add(BLACK, 0.5)
    assert cal.threshold[BLACK] == -0.8  # never above the configured threshold


@pytest.mark.parametrize("loser", [BLACK, WHITE])
def test_a_calibrating_runner_resigns_only_after_enough_won_no_resign_games(loser):
    cfg = make_config(parallel_games=4, batch_size=4, no_resign_share=0.5, resign_calibration_games=3,
                      resign_threshold=-0.8)
    runner = SelfPlayRunner(cfg, side_lost_evaluator(loser), seed=5)
    assert runner.resign_threshold(BLACK) is None and runner.resign_threshold(WHITE) is None
    first = runner.play(2)
    assert not any(r.resigned for r in first)  # uncalibrated: every game is played out
    assert sum(map(len, runner.resign.minima.values())) <= runner.stats.no_resign_games
    # games won by the winning colour calibrate that colour only: the loser still never resigns
    for _ in range(3):
        runner.resign.add(3 - loser, 1.0)
    assert runner.resign_threshold(3 - loser) == -0.8 and runner.resign_threshold(loser) is None
    assert not any(r.resigned for r in runner.play(8))
    # the loser's own won games (value +1 throughout): its threshold is the configured ceiling
    runner.resign.minima[loser].clear()  # (games it won played out, having looked lost all along)
    for _ in range(3):
        runner.resign.add(loser, 1.0)
    assert runner.resign_threshold(loser) == -0.8
    assert any(r.resigned and r.winner == 3 - loser for r in runner.play(8))


def test_a_colour_that_never_wins_never_resigns():
    """The collapse this prevents: pooled calibration let the colour that never won resign every game."""
    from azgo_core.selfplay import ResignCalibration

    cal = ResignCalibration(ceiling=-0.5, min_games=5)
    for m in np.linspace(-0.9, 0.9, 50):
        cal.add(BLACK, float(m))
    assert cal.threshold[BLACK] is not None and cal.threshold[WHITE] is None
    cal.add(0, -0.1)  # a draw calibrates nobody
    assert len(cal.minima[BLACK]) == 50 and len(cal.minima[WHITE]) == 0


def test_resigned_share_is_capped():
    """With every game lost at once for black, at most about resign_max_share of the games resign."""
    cfg = make_config(parallel_games=4, batch_size=4, no_resign_share=0.0, resign_max_share=0.5)
    runner = SelfPlayRunner(cfg, side_lost_evaluator(BLACK), seed=11)
    records = finish(runner, 60)
    share = np.mean([r.resigned for r in records])
    assert 0.3 <= share <= 0.6, share
    assert any(not r.resigned and replay(r).is_over for r in records)  # the rest are played out


def pass_loving_evaluator(planes):
    """A young network's habit under area scoring: nearly all prior on the pass."""
    b, n = len(planes), planes.shape[-1]
    logits = np.zeros((b, n * n + 1), np.float32)
    logits[:, -1] = 8.0
    return logits, np.zeros(b, np.float32)


def settled(pos):
    """Whether the board is divided for the side to move in ``pos`` (``board.settled``)."""
    from azgo_core import board

    return board.settled(pos.state, pos.size, pos.legal_mask())


def test_a_side_passes_only_after_a_pass_or_on_a_settled_board():
    cfg = make_config(parallel_games=4, batch_size=4, visits=8, cheap_visits=8, no_resign_share=1.0)
    records = SelfPlayRunner(cfg, pass_loving_evaluator, seed=2).play(6)
    first_passes = []
    for r in records:
        pos = Position(r.board_size, r.komi)
        for t, m in enumerate(r.moves.tolist()):
            if m == 25:
                after_a_pass = t > 0 and r.moves[t - 1] == 25
                assert after_a_pass or settled(pos), f"move {t + 1}: a pass on an unsettled board\n{pos.to_ascii()}"
                if not after_a_pass:
                    first_passes.append(t)
            pos.play(m)
        assert pos.is_over
        # the policy targets hold what the search could visit: no pass where none was allowed
        for t in range(r.num_moves):
            visited, _ = r.visits_at(t)
            if 25 in visited and r.moves[t] != 25:
                replayed = replay_to(r, t)
                assert (t > 0 and r.moves[t - 1] == 25) or settled(replayed)
    assert first_passes  # passes happen, where the rule allows them
    # without the rule the same network passes on open boards (white at move 2 with komi 0.5:
    # the first stone's owner passes back and wins, or the empty board goes to white)
    free = SelfPlayRunner(make_config(parallel_games=4, batch_size=4, visits=8, cheap_visits=8, no_resign_share=1.0,
                                      settled_pass=False), pass_loving_evaluator, seed=2).play(4)
    assert any(r.moves[0] == 25 for r in free)  # black passes the empty board away


def replay_to(record, t):
    pos = Position(record.board_size, record.komi)
    for m in record.moves[:t].tolist():
        pos.play(m)
    return pos
