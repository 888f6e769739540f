"""`azgo status`: the table drawn from a /status document, and a clear error without a broker."""

from __future__ import annotations

import argparse

from procs import free_ports
from rich.console import Console

from azgo_runtime.status import StatusUnavailable, fetch_status
from azgo_tools.status import default_url, main, render

STATUS = {
    "model": {"generation": 4, "sha256": "ab" * 32},
    "workers": [
        {"worker_id": "gpu1-a", "host": "gpu1", "state": "Active", "generation": 4, "games_total": 1234, "parallel_games": 96,
         "games_per_s": 0.61, "nn_evals_per_s": 412.0, "outbox": 0, "last_seen_s": 0.4},
        {"worker_id": "gpu2-b", "host": "gpu2", "state": "Error", "generation": 3, "games_total": 10,
         "games_per_s": 0.0, "nn_evals_per_s": 0.0, "outbox": 2, "last_seen_s": 1.0, "error": "CUDA out of memory"},
        {"worker_id": "gpu3-c", "host": "gpu3", "state": "Offline", "generation": 2, "games_total": 5,
         "games_per_s": 0.0, "nn_evals_per_s": 0.0, "outbox": 0, "last_seen_s": 93.0},
    ],
    "workers_by_state": {"Active": 1, "Syncing": 0, "Error": 1, "Offline": 1},
    "totals": {"games": 1249, "positions": 98000},
    "rates": {"games_per_s": 0.61, "positions_per_s": 48.0},
    "learner": {"step": 300, "loss_total": 3.123},
}


def text_of(renderable) -> str:
    console = Console(width=140, record=True)
    console.print(renderable)
    return console.export_text()


def test_table_shows_every_worker_state_generation_and_errors():
    text = text_of(render(STATUS))
    for word in ("gpu1-a", "gpu2-b", "gpu3-c", "Active", "Error", "Offline", "000004", "000003", "1,234", "0.61"):
        assert word in text
    head = next(line for line in text.splitlines() if "worker" in line and "at once" in line)
    row = next(line for line in text.splitlines() if "gpu1-a" in line)
    at = head.index("at once")
    assert row[at:at + 7].strip() == "96"  # the games a worker plays at once (its host's weight scales them)
    assert "CUDA out of memory" in text  # an Error worker says why
    assert "Active 1  Syncing 0  Error 1  Offline 1" in text
    assert "loss 3.123" in text


def test_no_workers_yet():
    assert "no workers have said hello yet" in text_of(render({"workers": [], "model": None}))


def test_default_address_follows_the_config(tmp_path, monkeypatch):
    monkeypatch.delenv("AZGO_BROKER__HTTP_PORT", raising=False)
    config = tmp_path / "azgo.yaml"
    config.write_text("broker: {http_port: 9233}\n")
    assert default_url(str(config)) == "http://127.0.0.1:9233"
    monkeypatch.setenv("AZGO_BROKER__HTTP_PORT", "9234")  # the same overrides as the services
    assert default_url(str(config)) == "http://127.0.0.1:9234"
    assert default_url(str(tmp_path / "missing.yaml")) == "http://127.0.0.1:9100"


def test_unreachable_broker_is_a_clear_error(capsys):
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    try:
        fetch_status(url, timeout=1)
        raise AssertionError("fetch_status succeeded without a broker")
    except StatusUnavailable as e:
        assert f"127.0.0.1:{port}/status" in str(e)
    assert main(argparse.Namespace(url=url, watch=None, json=False)) == 1
    assert "broker not reachable" in capsys.readouterr().err


def test_progress_line_health_part():
    from azgo_tools.launcher import health_text

    text = health_text({"games": 300, "black_win_share": 0.52, "resigned_share": 0.08, "mean_moves": 71.2,
                        "white_passes_first_share": 0.48, "first_pass_move": 63.4})
    assert text == "health B 52% resigned 8% 71 moves W-pass-first 48% @ 63"
    assert health_text({"games": 3, "black_win_share": None, "resigned_share": 0.0, "mean_moves": 5.0,
                        "white_passes_first_share": None, "first_pass_move": None}) == \
        "health B - resigned 0% 5 moves W-pass-first -"
