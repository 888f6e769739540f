"""The broker's batch checks, worker liveness and status table, without sockets."""

from __future__ import annotations

import pytest
from broker_helpers import batch, game, play_games, tiny_settings

from azgo_broker.status import finite, format_table
from azgo_broker.validate import BatchRejected, BatchRules, validate_batch
from azgo_broker.workers import FORGET_AFTER, WorkerRegistry
from azgo_core import protocol as P

RULES = BatchRules(board_size=5, komi=7.5, max_games=50, max_bytes=1 << 20)


@pytest.fixture(scope="module")
def games():
    return play_games(tiny_settings(), 3, "w1", generation=0)


def rejected(msg, blobs, published=(0,), rules=RULES) -> BatchRejected:
    with pytest.raises(BatchRejected) as e:
        validate_batch(msg, blobs[0], rules, published)
    return e.value


def test_selfplay_games_pass(games):
    for compress in (True, False):
        msg, blobs = batch("b", "w1", games, compress=compress)
        assert len(validate_batch(msg, blobs[0], RULES, {0})) == 3


def test_header_must_describe_the_games(games):
    e = rejected(*batch("b", "w1", games, games=4))
    assert e.code == P.ErrorCode.BAD_BATCH and "header says 4 games, the batch holds 3" in e.reason
    positions = sum(g.num_moves for g in games)
    e = rejected(*batch("b", "w1", games, positions=positions + 1))
    assert f"header says {positions + 1} positions, the games hold {positions} moves" in e.reason
    e = rejected(*batch("b", "w1", games, generations=[0, 1]), published=(0, 1))
    assert "header says generations [0, 1], the games were played with [0]" in e.reason


def test_foreign_games_are_refused(games):
    e = rejected(*batch("b", "w2", games))
    assert "game 0: played by worker 'w1', submitted by 'w2'" in e.reason
    e = rejected(*batch("b", "w", [game([0, 1]), game([0, 1], size=7)]))
    assert e.code == P.ErrorCode.BAD_BATCH and "game 1: board size 7, this run plays 5x5" in e.reason
    e = rejected(*batch("b", "w", [game([0], komi=5.5)]))
    assert "game 0: komi 5.5, this run uses 7.5" in e.reason


def test_unpublished_generation_is_wrong_generation(games):
    e = rejected(*batch("b", "w1", games), published=())
    assert e.code == P.ErrorCode.WRONG_GENERATION
    assert "game 0: played with generation 0, which was never published" in e.reason


def test_illegal_moves_name_the_game_and_move():
    e = rejected(*batch("b", "w", [game([0, 1, 2]), game([0, 6, 12, 0])]))
    assert e.code == P.ErrorCode.BAD_BATCH and "game 1, move 4: illegal move A5: occupied" in e.reason
    e = rejected(*batch("b", "w", [game([25, 25, 3])]))  # two passes end the game
    assert "game 0, move 3" in e.reason and "game over" in e.reason


def test_undecodable_and_oversized_batches(games):
    msg, _ = batch("b", "w1", games)
    e = rejected(msg, [b"\x92not a batch"])
    assert e.code == P.ErrorCode.BAD_BATCH and "undecodable batch" in e.reason
    e = rejected(msg, [b"x" * 2048], rules=BatchRules(5, 7.5, 50, 1024))
    assert e.code == P.ErrorCode.TOO_LARGE and "2048 bytes, above the limit of 1024" in e.reason
    e = rejected(*batch("b", "w1", games), rules=BatchRules(5, 7.5, 2, 1 << 20))
    assert e.code == P.ErrorCode.BAD_BATCH


def test_liveness_offline_and_back():
    reg = WorkerRegistry(liveness_seconds=1.0)
    reg.hello(P.Hello(worker_id="a", board_size=5, host="h1"), now=0.0, wall=1000.0)
    assert reg.get("a").state == P.WorkerState.SYNCING  # no model until its first heartbeat says so
    reg.hello(P.Hello(worker_id="l", board_size=5, role="learner"), now=0.5, wall=1000.0)
    worker, first = reg.heartbeat(P.Heartbeat(worker_id="a", generation=2, games_per_s=1.5), now=0.5)
    assert worker.generation == 2 and first and worker.state == P.WorkerState.ACTIVE
    assert reg.heartbeat(P.Heartbeat(worker_id="a", generation=2), now=0.6)[1] is False  # observed once
    assert reg.heartbeat(P.Heartbeat(worker_id="nobody"), now=0.6) == (None, False)
    assert reg.purge(now=1.5) == []
    gone = reg.purge(now=1.7)
    assert [w.worker_id for w in gone] == ["a", "l"] and reg.by_state()["Offline"] == 1  # learner not counted
    reg.touch("a", now=2.0)  # any message: alive again, in the state it last reported
    assert reg.get("a").state == P.WorkerState.ACTIVE
    reg.heartbeat(P.Heartbeat(worker_id="a", state=P.WorkerState.SYNCING, generation=2), now=2.1)
    reg.purge(now=3.2)
    assert reg.get("a").state == P.WorkerState.OFFLINE
    reg.touch("a", now=3.3)
    assert reg.get("a").state == P.WorkerState.SYNCING  # not Active: Syncing was its last word
    reg.heartbeat(P.Heartbeat(worker_id="a", state=P.WorkerState.ERROR, error="CUDA OOM"), now=3.4)
    reg.hello(P.Hello(worker_id="a", board_size=5), now=4.0, wall=1004.0)  # it restarted: Error no more
    assert reg.get("a").state == P.WorkerState.SYNCING and reg.get("a").joined == 1000.0
    reg.touch("a", now=4.05)
    assert reg.get("a").state == P.WorkerState.SYNCING and reg.get("a").error == ""
    reg.heartbeat(P.Heartbeat(worker_id="a", state=P.WorkerState.ERROR, error="CUDA OOM"), now=4.1)
    assert reg.by_state() == {"Active": 0, "Syncing": 0, "Error": 1, "Offline": 0}
    reg.purge(now=10.0)
    reg.purge(now=10.0 + FORGET_AFTER + 1)
    assert reg.get("a") is None and reg.get("l") is None


def test_status_table_shows_workers_and_nan_becomes_null():
    reg = WorkerRegistry(liveness_seconds=1.0)
    reg.hello(P.Hello(worker_id="gpu1-0", board_size=5, host="gpu1"), now=0.0, wall=0.0)
    reg.heartbeat(P.Heartbeat(worker_id="gpu1-0", generation=12, games_per_s=2.25, games_total=40), now=0.5)
    status = finite({
        "broker": {"id": "broker-x", "version": "0", "uptime_s": 3.0, "data_dir": "d"},
        "model": {"generation": 12}, "workers": [w.row(1.0) for w in reg.selfplay()],
        "workers_by_state": reg.by_state(),
        "totals": {"games": 40, "positions": 900, "batches": 4, "duplicates": 1, "rejected": 0, "bytes_in": 1,
                   "bytes_out": 2, "store_bytes": 12345},
        "rates": {"games_per_s": 1.0, "positions_per_s": 20.0},
        "learner": {"step": 7, "loss_total": float("nan"), "samples_per_s": 100.0, "age_s": 0.5, "waiting": True},
    })
    assert status["learner"]["loss_total"] is None
    text = format_table(status)
    header, row = text.splitlines()[0], next(line for line in text.splitlines() if line.startswith("gpu1-0"))
    assert "model 000012" in header
    assert row.split()[:6] == ["gpu1-0", "gpu1", "Active", "000012", "40", "2.25"]
    assert "waiting for games" in text
