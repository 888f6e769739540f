"""The evaluator's pure parts: the schedule, the anchor, the result files, the status sample, the broker's Elo series."""

from __future__ import annotations

import json

import msgpack
import pytest
from procs import tiny_config
from prometheus_client import generate_latest

from azgo_broker.metrics import BrokerMetrics
from azgo_core import protocol as P
from azgo_core.config import Evaluation, load_settings
from azgo_core.model import AZNet
from azgo_core.rating import fit_ratings
from azgo_evaluator.evaluator import Evaluator
from azgo_evaluator.link import status_sample
from azgo_evaluator.results import ResultStore
from azgo_evaluator.schedule import accepted, anchor_of, plan
from azgo_runtime.service import StopFlag


def names(opponents) -> list[tuple[str, int]]:
    return [(o.name, o.games) for o in opponents]


def test_the_first_generation_plays_both_anchors():
    cfg = Evaluation(games_per_match=10, opponents=2, gnugo_every=5, random_every=3, gnugo_levels=[2])
    assert names(plan([], cfg)) == [("random", 10), ("gnugo-l2", 10)]
    ladder = plan([], Evaluation(games_per_match=10, gnugo_every=5, random_every=3))  # the default: levels 1 and 10
    assert names(ladder) == [("random", 10), ("gnugo-l1", 10), ("gnugo-l10", 10)]
    assert [o.level for o in ladder] == [None, 1, 10]
    assert names(plan([], Evaluation(gnugo_levels=[], random_every=0))) == []


def test_later_generations_play_the_latest_evaluated_and_anchors_periodically():
    cfg = Evaluation(games_per_match=4, opponents=2, gnugo_every=3, random_every=2)
    assert names(plan([0], cfg)) == [("000000", 4)]  # k = 1
    assert names(plan([0, 4], cfg)) == [("000004", 4), ("000000", 4), ("random", 4)]  # k = 2
    assert names(plan([0, 4, 9], cfg)) == [("000009", 4), ("000004", 4), ("gnugo-l1", 4), ("gnugo-l10", 4)]  # k = 3
    assert names(plan([0, 4, 9], cfg, gnugo=False)) == [("000009", 4), ("000004", 4)]  # no GNU Go installed


def test_zero_disables_an_opponent_kind():
    cfg = Evaluation(opponents=0, gnugo_every=0, random_every=0)
    assert plan([], cfg) == [] and plan([1, 2], cfg) == []


def test_gating_plays_the_best_first_and_once():
    cfg = Evaluation(gating=True, gate_games=50, games_per_match=10, opponents=1, gnugo_every=0, random_every=0)
    gate = plan([3, 7], cfg, best=7)
    assert names(gate) == [("000007", 50)] and gate[0].gate and gate[0].generation == 7
    assert names(plan([3, 7], cfg, best=3)) == [("000003", 50), ("000007", 10)]
    assert accepted(0.55, cfg) and not accepted(0.54, cfg)


def test_the_anchor_is_random_else_the_first_generation():
    assert anchor_of({"random", "000003", "gnugo-l1"}, [3]) == "random"
    assert anchor_of({"000005", "000003"}, [3, 5]) == "000003"


def game_row(subject, opponent, points, match="m1", sgf="x.sgf") -> dict:
    return {"subject": subject, "opponent": opponent, "subject_points": points, "match": match, "sgf": sgf}


def test_result_store_survives_a_torn_line_and_resumes(tmp_path):
    store = ResultStore(tmp_path)
    store.add_game(game_row("000001", "random", 1.0))
    store.add_game(game_row("000001", "random", 0.5, match="m2"))
    store.add_evaluation({"generation": 1, "best_generation": -1})
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write('{"subject": "000002", "oppo')  # a crash mid-line
    again = ResultStore(tmp_path)
    assert again.pairwise() == [("000001", "random", 1.0), ("000001", "random", 0.5)]
    assert again.evaluated() == [1] and again.matches_total() == 2


def test_sgf_names_count_each_pairing(tmp_path):
    store = ResultStore(tmp_path)
    first = store.write_sgf("000004", "gnugo-l1", "(;GM[1])")
    store.add_game(game_row("000004", "gnugo-l1", 0.0, sgf=first))
    second = store.write_sgf("000004", "gnugo-l1", "(;GM[1])")
    assert (first, second) == ("sgf/000004-vs-gnugo-l1-001.sgf", "sgf/000004-vs-gnugo-l1-002.sgf")
    # a file left by a crash before its result line is never overwritten
    assert store.write_sgf("000004", "gnugo-l1", "(;GM[1])") == "sgf/000004-vs-gnugo-l1-003.sgf"


def test_ratings_json_has_every_player_and_nulls_for_the_unrated(tmp_path):
    store = ResultStore(tmp_path)
    for row in (game_row("000001", "random", 1.0), game_row("000001", "random", 0.0), game_row("000009", "000008", 1.0)):
        store.add_game(row)
    ratings = fit_ratings(store.pairwise(), anchor="random")
    doc = store.write_ratings(ratings, {"000001": 1, "000008": 8, "000009": 9}, -1)
    on_disk = json.loads((tmp_path / "ratings.json").read_text())
    assert on_disk == doc
    players = {p["player"]: p for p in doc["players"]}
    assert players["000001"]["elo"] == 0 and players["000001"]["generation"] == 1
    assert players["000009"]["elo"] is None  # no chain of games to the random player


def test_status_sample_sums_live_workers():
    status = {"totals": {"games": 40, "positions": 900}, "model": {"generation": 3}, "learner": {"step": 12, "loss_total": 3.2},
              "workers": [{"state": "Active", "games_per_s": 0.5, "nn_evals_per_s": 100.0, "positions_per_s": 20.0},
                          {"state": "Syncing", "games_per_s": 0.25, "nn_evals_per_s": 50.0, "positions_per_s": 10.0},
                          {"state": "Offline", "games_per_s": 9.0, "nn_evals_per_s": 900.0, "positions_per_s": 90.0}]}
    row = status_sample(status)
    assert row["games_per_s"] == 0.75 and row["nn_evals_per_s"] == 150.0 and row["workers"] == 2
    assert row["workers_active"] == 1 and row["generation"] == 3 and row["learner_step"] == 12


def test_eval_report_refuses_non_finite_elo():
    frame = P.encode(P.EvalReport(evaluator_id="e", anchor="random", ratings=[], games_total=0, matches_total=0))
    assert P.decode(frame).anchor == "random"
    bad = {**P.EvalReport(evaluator_id="e", anchor="random", ratings=[], games_total=0, matches_total=0).model_dump(),
           "ratings": [{"player": "000001", "generation": 1, "elo": float("nan"), "low": 0.0, "high": 0.0, "games": 1}]}
    with pytest.raises(P.ProtocolError, match="elo"):
        P.decode(msgpack.packb(bad))


def test_broker_elo_series_stay_bounded_and_counters_count_news_only():
    metrics = BrokerMetrics()
    metrics.eval_ratings({"000001": (10.0, 0.0, 20.0), "000002": (30.0, 15.0, 45.0)}, games_total=20, matches_total=2)
    metrics.eval_ratings({"000002": (31.0, 16.0, 46.0), "000003": (50.0, 40.0, 60.0)}, games_total=30, matches_total=3)
    metrics.eval_ratings({"000002": (31.0, 16.0, 46.0), "000003": (50.0, 40.0, 60.0)}, games_total=30, matches_total=3)
    text = generate_latest(metrics.registry).decode()
    assert 'azgo_elo{generation="000001"}' not in text
    assert 'azgo_elo{generation="000003"} 50.0' in text and 'azgo_elo_low{generation="000002"} 16.0' in text
    assert "azgo_eval_games_total 30.0" in text and "azgo_eval_matches_total 3.0" in text


def test_gating_accepts_or_keeps_the_best_and_records_it(tmp_path):
    """The evaluator's loop body in-process, with the broker link stubbed: the gate's decisions land on disk."""
    config = tiny_config(tmp_path, evaluation={"gating": True, "gate_games": 2, "gate_win_rate": 0.55, "opponents": 1,
                                               "games_per_match": 2, "visits": 2, "gnugo_every": 0, "random_every": 0,
                                               "data_dir": str(tmp_path / "evaluator")})
    settings = load_settings(config)
    evaluator = Evaluator(settings, StopFlag(install=False))
    reports = []
    evaluator.link.report = reports.append  # no broker: keep what would be sent
    evaluator.load = lambda g: evaluator.nets.setdefault(g, AZNet(settings.net_config())) is not None
    try:
        evaluator.evaluate(0)  # the first generation is the best without a gate
        evaluator.evaluate(1)
        evaluator.evaluate(2)
    finally:
        evaluator.link.close()
    done = evaluator.store.evaluations()
    assert [e["generation"] for e in done] == [0, 1, 2] and done[0]["gate"] is None and done[0]["best_generation"] == 0
    for previous, e in zip(done, done[1:]):
        gate = e["gate"]
        assert gate["opponent"] == f"{previous['best_generation']:06d}"
        assert e["best_generation"] == (e["generation"] if gate["score"] >= 0.55 else previous["best_generation"])
    # generation 2 plays the gate (the best) and, when the best is not generation 1, generation 1 as well
    expected = 2 + 2 + (0 if done[1]["best_generation"] == 1 else 2)
    assert len(evaluator.store.games()) == expected
    assert reports[-1].best_generation == done[-1]["best_generation"] and reports[-1].games_total == expected
