"""`azgo strength` end to end: a short real run, matches of its last generation, one rating pool, the page."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from procs import clean_environ, tiny_config

from azgo_tools.strength import elo_per_cpu_hour, match_games, pool_tables

GNUGO = os.environ.get("AZGO_GNUGO", "/usr/games/gnugo")


def test_strength_trains_matches_rates_and_writes_the_page(tmp_path):
    (tmp_path / "cfg").mkdir()
    config = tiny_config(tmp_path / "cfg", evaluation={"enabled": True})
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "azgo_tools.cli", "strength", "--config", str(config), "--minutes", "0.5",
                          "--out", str(out), "--games", "4", "--visits", "8", "--opponents", "random,gnugo:1"],
                         capture_output=True, text=True, timeout=600, env={**clean_environ(), "AZGO_GNUGO": GNUGO})
    assert run.returncode == 0, run.stdout + run.stderr + (out / "run.log").read_text()
    page = (out / "strength.md").read_text()
    last = sorted((tmp_path / "cfg" / "broker" / "models").glob("*.safetensors"))[-1].stem
    me = f"azgo-{last}"
    for opp, name in (("random", "random"), ("gnugo-1", "gnugo-l1")):
        games = match_games(out / "matches" / opp, me, name)
        assert len(games) == 4  # every game of the match was played and read back
        assert f"| {me} | {name} |" in page
        sgfs = [p.read_text() for p in (out / "matches" / opp).glob("*.sgf")]
        assert len(sgfs) == 4 and len({s.split(";", 2)[2] for s in sgfs}) == 4  # four distinct games
    assert f"- last generation {last};" in page and "load average (1, 5, 15 min) at the start" in page
    assert "| player | Elo (random = 0) |" in page and "| random | +0 |" in page
    assert (out / "report" / "report.md").exists() and "![Losses](report/losses.png)" in page
    assert "training health of the last" in page
    assert "(auxiliary heads off, global pooling off); search puct" in page  # the defaults
    split = re.search(r"where the CPU went during training \(percent of one core\): self-play (\d+)% learner", page)
    assert split and int(split.group(1)) > 0, page
    assert re.search(r"- Elo per CPU-hour: [+-]\d+ ", page), page
    metrics = [json.loads(line) for line in (tmp_path / "cfg" / "learner" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] > 0


def test_pool_tables_from_results():
    results = [("a", "random", 1.0)] * 3 + [("a", "random", 0.0)] + [("a", "b", 0.5), ("a", "b", 1.0)]
    lines = pool_tables(results)
    assert "| a | random | 0.750 (3-0-1) |" in lines[2]
    assert "| a | b | 0.750 (1-1-0) |" in lines[3]
    assert lines[5].startswith("| player | Elo (random = 0)")
    assert any(line.startswith("| random | +0 |") for line in lines)


def test_elo_per_cpu_hour_divides_the_pooled_elo_by_every_role_s_cpu_time():
    results = [("azgo-1", "random", 1.0)] * 3 + [("azgo-1", "random", 0.0)]
    split = "self-play 100% learner 50% evaluator 30% broker 20% of 200%"  # two cores busy: 2 CPU-hours an hour
    from azgo_core.rating import fit_ratings

    elo = fit_ratings(results, anchor="random").elo("azgo-1")
    assert elo > 0 and elo_per_cpu_hour(results, "azgo-1", split, 60) == elo / 2.0
    assert elo_per_cpu_hour(results, "azgo-1", split, 30) == elo
    assert elo_per_cpu_hour(results, "azgo-2", split, 60) is None  # not in the pool
