"""`azgo report` on synthetic run data: four readable PNGs and a markdown page that names the figures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from azgo_core.rating import fit_ratings
from azgo_tools.report import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def health(i: int) -> dict:
    """The health part of learner report i: black takes over from report 60 on (a collapse)."""
    share = 0.5 if i < 60 else 0.97

    def h(generation=None):
        return {"generation": generation, "games": 200, "black_win_share": share, "resigned_share": 0.1,
                "mean_moves": 70.0 - i / 3, "white_passes_first_share": 0.5, "first_pass_move": 60.0,
                "false_resignation_rate": None}
    return {"health": h(), "health_by_generation": [h(g) for g in range(i // 15 + 1)],
            "health_warnings": ["black won 97% of the last 200 self-play games: one colour has taken over"] if i >= 60 else []}


def synthetic_run(data: Path) -> None:
    """Half an hour of a run: learner reports, status samples, 6 rated generations with anchors."""
    t0 = 1_700_000_000.0
    write_jsonl(data / "learner" / "metrics.jsonl", [
        {"time": t0 + 20 * i, "step": 10 * i, "generation": i // 15, "loss_policy": 3.2 * math.exp(-i / 60) + 1.0,
         "loss_value": 0.9 * math.exp(-i / 40) + 0.3, "loss_total": 4.1 * math.exp(-i / 50) + 1.3,
         "samples_per_s": 900 + 50 * math.sin(i / 5), "waiting": False, **health(i)} for i in range(90)])
    write_jsonl(data / "evaluator" / "status.jsonl", [
        {"time": t0 + 30 * i, "games": 12 * i, "positions": 900 * i, "games_per_s": 0.4 + 0.01 * (i % 7),
         "nn_evals_per_s": 2800 + 30 * (i % 5), "positions_per_s": 30.0, "workers": 2 if i < 40 else 3,
         "workers_active": 2 if i % 9 else 1, "generation": i // 10, "learner_step": 10 * i, "loss_total": 2.0}
        for i in range(60)])
    results, rows = [], []
    for g in range(6):
        subject = f"{g:06d}"
        for opponent, wins in [("random", 2 + g), ("gnugo-l1", max(0, g - 3))] + ([(f"{g - 1:06d}", 6)] if g else []):
            for k in range(10):
                points = 1.0 if k < wins else 0.0
                results.append((subject, opponent, points))
                rows.append({"subject": subject, "opponent": opponent, "subject_points": points,
                             "match": f"{subject}-{opponent}"})
    write_jsonl(data / "evaluator" / "results.jsonl", rows)
    fit = fit_ratings(results, anchor="random")
    players = [{"player": p.name, "generation": int(p.name) if p.name.isdigit() else None, "elo": p.elo, "low": p.low,
                "high": p.high, "games": int(p.games), "score": p.score} for p in fit.players]
    (data / "evaluator" / "ratings.json").write_text(json.dumps({
        "anchor": "random", "confidence": 0.95, "games_total": len(rows), "matches_total": 17, "best_generation": -1,
        "evaluated": list(range(6)), "players": players}))


def test_report_draws_every_figure_and_summarises(tmp_path):
    data = tmp_path / "data"
    synthetic_run(data)
    drawn = write_report(data, data / "report")
    assert drawn == {"losses.png": True, "elo.png": True, "throughput.png": True, "workers.png": True, "health.png": True}
    for name in drawn:
        blob = (data / "report" / name).read_bytes()
        assert blob.startswith(PNG_MAGIC) and len(blob) > 10_000, name  # a real image, not an empty canvas
    md = (data / "report" / "report.md").read_text()
    assert "![Elo by generation](elo.png)" in md and "![Training loss](losses.png)" in md
    assert "latest generation 5" in md and "| gnugo-l1 |" in md
    assert "| 000005 | 200 | 97% | 10% | 40 | 50% | 60 | - |" in md  # the last report's health of generation 5
    assert "**Warning**: black won 97%" in md and "![Training health](health.png)" in md
    assert "| 000005 | 10-0-0 |" not in md and "| 000005 | 2-0-8 | 7-0-3 |" in md  # gnugo-l1 then random columns


def test_report_without_data_says_so(tmp_path):
    (tmp_path / "data").mkdir()
    run = subprocess.run([sys.executable, "-m", "azgo_tools.cli", "report", "--data", str(tmp_path / "data")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "elo.png: no data yet" in run.stdout
    md = (tmp_path / "data" / "report" / "report.md").read_text()
    assert "no data found" in md and not list((tmp_path / "data" / "report").glob("*.png"))
    missing = subprocess.run([sys.executable, "-m", "azgo_tools.cli", "report", "--data", str(tmp_path / "nowhere")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "not found" in missing.stderr
