"""The ``azgo`` command as a process: ``azgo config`` (the resolved settings, refusals, the reference)
and ``azgo gtp`` (only protocol on stdout, sizes and model files refused with a reason, legal play
against GNU Go). The engines and settings themselves are tested in ``libs/azgo_core/tests``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from gtp_client import GtpClient, play_against_gnugo

from azgo_core.config_reference import reference_markdown

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "azgo.yaml"


# --- azgo config -------------------------------------------------------------------------
def test_azgo_config_command_prints_and_refuses(tmp_path):
    azgo = [sys.executable, "-m", "azgo_tools.cli", "config", "--config"]
    ok = subprocess.run([*azgo, str(CONFIG)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and yaml.safe_load(ok.stdout)["distributed"]["batch_size"] == 100
    refused = tmp_path / "azgo.yaml"
    refused.write_text(yaml.safe_dump({"distributed": {"batch_size": -1}}))
    bad = subprocess.run([*azgo, str(refused)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "distributed.batch_size" in bad.stderr


def test_azgo_config_prints_the_generated_reference():
    printed = subprocess.run([sys.executable, "-m", "azgo_tools.cli", "config", "--reference"],
                             capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0 and printed.stdout == reference_markdown()


# --- azgo gtp ---------------------------------------------------------------------------
RESPONSE = re.compile(r"[=?]\d*( [^\n]*)?(\n[^\n]+)*\n\n")


def azgo_gtp(*args: str, stdin: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "azgo_tools.cli", "gtp", *args],
        input=stdin, capture_output=True, text=True, timeout=timeout,
    )


def test_cli_stdout_carries_only_protocol_responses():
    script = ["1 protocol_version", "2 name", "boardsize 9", "komi 6.5", "play b E5", "genmove w",
              "showboard", "list_stones black", "final_score", "undo", "frobnicate", "# just a comment",
              "", "boardsize 25", "3 quit", "name"]
    done = azgo_gtp("--visits", "8", stdin="\n".join(script) + "\n")
    assert done.returncode == 0, done.stderr
    responses = [m.group(0) for m in RESPONSE.finditer(done.stdout)]
    assert "".join(responses) == done.stdout  # nothing but responses, back to back
    assert len(responses) == 13  # one per command up to quit; comments, blank lines and after quit: none
    assert responses[0] == "=1 2\n\n" and responses[1] == "=2 azgo\n\n"
    assert re.fullmatch(r"= ([A-HJ][1-9]|pass|resign)\n\n", responses[5]), responses[5]
    assert responses[7] == "= E5\n\n"
    assert responses[10] == "? unknown command\n\n"
    assert responses[11] == "? unacceptable size\n\n"
    assert responses[12] == "=3 \n\n"


def test_cli_refuses_a_size_the_model_does_not_play(tmp_path):
    model = pytest.importorskip("azgo_core.model")
    path = tmp_path / "net.safetensors"
    model.save_model(path, model.AZNet(model.NetConfig(board_size=7, blocks=1, channels=8)), generation=3)
    done = azgo_gtp("--model", str(path), "--size", "9", stdin="name\n")
    assert done.returncode == 2 and done.stdout == ""
    assert "board size 7" in done.stderr
    done = azgo_gtp("--model", str(path), "--visits", "4", stdin="boardsize 9\nboardsize 7\ngenmove b\n")
    assert done.returncode == 0, done.stderr
    responses = done.stdout.split("\n\n")
    assert responses[0] == "? unacceptable size" and responses[1] == "= "
    assert re.fullmatch(r"= ([A-G][1-7]|pass|resign)", responses[2])


def test_cli_reports_a_bad_model_file(tmp_path):
    path = tmp_path / "net.safetensors"
    path.write_bytes(b"\x80\x04not a model")
    done = azgo_gtp("--model", str(path), stdin="name\n")
    assert done.returncode == 2 and done.stdout == ""
    assert "cannot load model" in done.stderr


@pytest.mark.slow
def test_azgo_gtp_network_player_against_gnugo():
    argv = [sys.executable, "-m", "azgo_tools.cli", "gtp", "--visits", "16", "--size", "9"]
    with GtpClient(argv, timeout=120) as ours:
        assert ours.send("name") == "azgo"
        moves = play_against_gnugo(ours, size=9, max_moves=40, our_colour="b")
    assert sum(m not in ("pass", "resign") for m in moves[0::2]) >= 1
