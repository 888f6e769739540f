"""The evaluator as a real process beside a real broker (tiny 5x5 config, real GNU Go).

Two generations are published; the evaluator plays each against the random player and GNU
Go (and generation 1 against generation 0), keeps every game as SGF, fits the ratings and
reports them: /metrics gets azgo_elo{generation=...} and the evaluation counters, /status
gets the ratings. A restart resumes without evaluating a generation twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from broker_helpers import publish, tiny_settings
from procs import Service, get_json, get_text, http_url, router_endpoint, tiny_config, wait_for
from prometheus_client.parser import text_string_to_metric_families
from sgfmill import sgf as sgfmill_sgf

from azgo_core.position import Position
from azgo_core.sgf import from_sgf_moves
from azgo_runtime.client import BrokerClient

GNUGO = os.environ.get("AZGO_GNUGO", "/usr/games/gnugo")
TIMEOUT = 60  # seconds for one thing to happen (an evaluator start imports torch and compiles numba on a busy machine)

# under make test (AZGO_GNUGO set) a missing GNU Go fails these tests rather than skipping them
pytestmark = pytest.mark.skipif(not os.access(GNUGO, os.X_OK) and "AZGO_GNUGO" not in os.environ,
                                reason=f"GNU Go not found at {GNUGO} (set AZGO_GNUGO)")


def evaluations(data: Path) -> list[dict]:
    path = data / "evaluations.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def elo_samples(config: Path) -> dict[str, float]:
    families = text_string_to_metric_families(get_text(http_url(config, "/metrics")))
    return {s.labels["generation"]: s.value for f in families if f.name == "azgo_elo" for s in f.samples}


def counter(config: Path, name: str) -> float:
    families = text_string_to_metric_families(get_text(http_url(config, "/metrics")))
    return next(s.value for f in families if f.name == name for s in f.samples if s.name == name + "_total")


def niceness(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[16])  # field 19 of proc(5)


def autogroup_nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])  # "/autogroup-123 nice 10"


def test_evaluator_rates_new_generations_and_reports_them(tmp_path):
    data = tmp_path / "evaluator"
    config = tiny_config(tmp_path, evaluation={
        "enabled": True, "games_per_match": 2, "visits": 4, "opponents": 1, "gnugo_every": 1, "random_every": 1,
        "gnugo_levels": [0], "data_dir": str(data), "gnugo": GNUGO, "status_interval": 0.3,
    })
    settings = tiny_settings(config)
    broker = Service("broker", config, log_dir=tmp_path)
    evaluator = None
    client = BrokerClient(router_endpoint(config), timeout=10)
    try:
        wait_for(lambda: get_text(http_url(config, "/healthz")) == "ok\n", TIMEOUT, "the broker's /healthz")
        client.request(*publish(settings, 0))
        evaluator = Service("evaluator", config, log_dir=tmp_path, prefix=("setsid",))  # its own session, as make run
        wait_for(lambda: [e["generation"] for e in evaluations(data)] == [0], TIMEOUT, "generation 0 evaluated")
        assert niceness(evaluator.pid) == settings.evaluation.nice == 10  # it yields the CPU to self-play
        assert autogroup_nice(evaluator.pid) == 10  # also against other sessions' processes (make run's children)
        client.request(*publish(settings, 1))
        wait_for(lambda: [e["generation"] for e in evaluations(data)] == [0, 1], TIMEOUT, "generation 1 evaluated")
        elo = wait_for(lambda: (e := elo_samples(config)) and "000001" in e and e, 10, "azgo_elo of generation 1")

        # the matches the schedule names: 0 vs random and GNU Go; 1 vs 0, random, GNU Go; two games each
        results = [json.loads(line) for line in (data / "results.jsonl").read_text().splitlines()]
        pairs = sorted({(r["subject"], r["opponent"]) for r in results})
        assert pairs == [("000000", "gnugo-l0"), ("000000", "random"), ("000001", "000000"), ("000001", "gnugo-l0"),
                         ("000001", "random")]
        assert len(results) == 10
        assert counter(config, "azgo_eval_games") == 10 and counter(config, "azgo_eval_matches") == 5
        assert set(elo) == {"000000", "000001"}

        # ratings: in ratings.json and /status, the random player at 0, values with intervals
        ratings = json.loads((data / "ratings.json").read_text())
        assert ratings["anchor"] == "random" and ratings["games_total"] == 10 and ratings["evaluated"] == [0, 1]
        by_name = {p["player"]: p for p in ratings["players"]}
        assert by_name["random"]["elo"] == 0
        assert by_name["000001"]["low"] < by_name["000001"]["elo"] < by_name["000001"]["high"]
        assert elo["000001"] == pytest.approx(by_name["000001"]["elo"], abs=0.01)
        status = wait_for(lambda: (r := get_json(http_url(config, "/status"))["ratings"]) and r["games_total"] == 10 and r,
                          10, "the ratings of all 10 games in /status")
        assert status["latest"]["generation"] == 1 and status["anchor"] == "random"
        assert {a["player"] for a in status["anchors"]} == {"random", "gnugo-l0"}

        # every game is an SGF file that sgfmill reads and the rules replay; colours alternate
        for r in results:
            text = (data / r["sgf"]).read_text()
            root = sgfmill_sgf.Sgf_game.from_string(text).get_root()
            assert (root.get("PB"), root.get("PW"), root.get("RE")) == (r["black"], r["white"], r["result"])
            size, komi, moves, _ = from_sgf_moves(text)
            pos = Position(size, komi)
            for move in moves:
                pos.play(move)
        first = [r for r in results if r["opponent"] == "random" and r["subject"] == "000001"]
        assert [r["black"] for r in first] == ["azgo-000001", "random"]

        # the status history for azgo report
        samples = [json.loads(line) for line in (data / "status.jsonl").read_text().splitlines()]
        assert samples and {"games_per_s", "nn_evals_per_s", "workers"} <= set(samples[-1])

        # a restart resumes: nothing new to evaluate, the broker hears the ratings again
        assert evaluator.stop() == 0
        broker_games = counter(config, "azgo_eval_games")
        evaluator = Service("evaluator", config, log_dir=tmp_path, tag="evaluator-2")
        wait_for(lambda: "ratings: generation 000001" in evaluator.log(), TIMEOUT, "the restarted evaluator's report")
        assert [e["generation"] for e in evaluations(data)] == [0, 1]
        assert counter(config, "azgo_eval_games") == broker_games  # totals, not increments: nothing counted twice
    except BaseException:
        for service in (broker, evaluator):
            if service is not None:
                print(f"--- {service.log_path.name}\n{service.log()[-4000:]}")
        raise
    finally:
        client.close()
        if evaluator is not None:
            evaluator.stop()
        broker.stop()
