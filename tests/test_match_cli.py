"""`azgo match` end to end as a process: GNU Go and a model file against random, the score line, SGF files, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from broker_helpers import tiny_settings
from sgfmill import sgf as sgfmill_sgf

from azgo_core.model import AZNet, save_model
from azgo_tools import cli

GNUGO = os.environ.get("AZGO_GNUGO", "/usr/games/gnugo")
AZGO = [sys.executable, "-m", "azgo_tools.cli"]


def azgo_match(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*AZGO, "match", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "AZGO_GNUGO": GNUGO})


@pytest.mark.skipif(not os.access(GNUGO, os.X_OK) and "AZGO_GNUGO" not in os.environ, reason=f"GNU Go not found at {GNUGO}")
def test_gnugo_against_random_prints_the_score_and_writes_sgf(tmp_path):
    out = tmp_path / "games"
    run = azgo_match("gnugo", "random", "--games", "2", "--size", "7", "--out", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "gnugo-l1 vs random: 2 games on 7x7" in run.stdout
    assert "gnugo-l1: 2 wins, 0 draws, 0 losses in 2 games; score 1.000 (95% interval 0.342 .. 1.000)" in run.stdout
    assert "Elo gnugo-l1 - random: +inf" in run.stdout
    files = sorted(p.name for p in out.glob("*.sgf"))
    assert files == ["game-001.sgf", "game-002.sgf"]
    roots = [sgfmill_sgf.Sgf_game.from_bytes(p.read_bytes()).get_root() for p in sorted(out.glob("*.sgf"))]
    assert [(r.get("PB"), r.get("PW")) for r in roots] == [("gnugo-l1", "random"), ("random", "gnugo-l1")]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["result"][0] for r in rows] == ["B", "W"]  # GNU Go won with black, then with white


def test_a_model_file_plays_at_its_board_size(tmp_path):
    model = tmp_path / "000007.safetensors"
    save_model(model, AZNet(tiny_settings().net_config()), generation=7)
    out = tmp_path / "games"
    run = azgo_match(f"{model}:4", "random", "--games", "2", "--out", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "azgo-000007 vs random: 2 games on 5x5" in run.stdout
    root = sgfmill_sgf.Sgf_game.from_bytes((out / "game-001.sgf").read_bytes()).get_root()
    assert root.get("PB") == "azgo-000007" and root.get("SZ") == 5


def test_bad_engines_are_named(tmp_path, capsys):
    model = tmp_path / "m.safetensors"
    save_model(model, AZNet(tiny_settings().net_config()), generation=1)
    for args, words in [(("nonsense", "random"), "'nonsense' is not random"),
                        (("gnugo:12", "random"), "level must be 0..10"),
                        ((str(model), "random", "--size", "7"), "plays 5x5, not 7x7"),
                        ((str(tmp_path / "missing.safetensors:5"), "random"), "cannot read model")]:
        status = cli.main(["match", *args, "--games", "1", "--out", str(tmp_path / "x")])  # in-process: fast
        assert status == 2 and words in capsys.readouterr().err, args
    assert not Path(tmp_path / "x").exists()  # nothing played, nothing written
