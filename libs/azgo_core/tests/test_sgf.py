"""SGF export: read back by sgfmill and loaded by GNU Go with the stones we expect."""

from __future__ import annotations

import datetime
import math
import os
import subprocess

import numpy as np
import pytest
from sgfmill import sgf as sgfmill_sgf

from azgo_core import coords
from azgo_core.records import GameRecord
from azgo_core.sgf import SgfError, from_sgf_moves, player_name, to_sgf

GNUGO = os.environ.get("AZGO_GNUGO", "/usr/games/gnugo")  # make test passes GNUGO= here


def record_from_gtp(size: int, komi: float, vertices: list[str], **kw) -> GameRecord:
    """A record whose moves are given as GTP vertices; each search visited only the move played."""
    moves = [coords.from_gtp(size, v) for v in vertices]
    visits = [([m], [100 + t]) for t, m in enumerate(moves)]
    return GameRecord.from_visits(size, komi, moves, visits, **kw)


# A legal 9x9 game: black captures the white stone on D5, both sides pass mid-game and at the end.
CAPTURE_GAME_9 = ["E5", "D5", "C5", "A1", "D6", "pass", "D4", "J9", "pass", "pass"]
# Black: E5 C5 D6 D4 + the empty D5 eye = 5 points; white: A1 J9 = 2 points; 5 - 2 - 7.5 = -4.5.
CAPTURE_GAME_9_STONES = ({"E5", "C5", "D6", "D4"}, {"A1", "J9"})

# A legal 13x13 game: white captures two black stones on the lower-left edge; asymmetric so a
# flipped row or column order would put stones elsewhere.
CAPTURE_GAME_13 = ["A2", "A3", "B2", "B3", "K10", "C2", "N13", "B1", "pass", "C1", "pass", "A1", "pass", "pass"]
CAPTURE_GAME_13_STONES = ({"K10", "N13"}, {"A3", "B3", "C2", "B1", "C1", "A1"})


def capture_record_9(**kw) -> GameRecord:
    defaults = dict(winner=2, score=-4.5, model_generation=123, worker_id="gpu0", seed=5, code_version="0.1.0",
                    root_values=np.linspace(-0.9, 0.9, len(CAPTURE_GAME_9)).astype(np.float32))
    return record_from_gtp(9, 7.5, CAPTURE_GAME_9, **(defaults | kw))


# ---------------------------------------------------------------- sgfmill reads what we write


@pytest.mark.parametrize("size, num_moves, seed", [(5, 0, 0), (9, 81, 1), (13, 120, 2), (19, 300, 3)])
def test_sgfmill_reads_back_size_komi_moves_result_players(size, num_moves, seed):
    rng = np.random.default_rng(seed)
    moves = rng.integers(0, size * size + 1, size=num_moves)  # records do not check legality
    moves[-3:] = size * size  # passes, including the last two
    record = GameRecord.from_visits(
        size, 6.5, moves.tolist(), [([m], [1]) for m in moves.tolist()],
        winner=1, resigned=True, model_generation=seed * 1000 + 7,
    )
    text = to_sgf(record)
    game = sgfmill_sgf.Sgf_game.from_string(text)
    root = game.get_root()
    assert game.get_size() == size
    assert game.get_komi() == 6.5
    assert root.get("RE") == "B+R"
    assert root.get("PB") == root.get("PW") == f"azgo-{seed * 1000 + 7:06d}"
    assert root.get("FF") == 4 and root.get("GM") == 1
    assert root.get("RU") == "Tromp-Taylor"
    # sgfmill's own coordinates: (row from the bottom, col), None for a pass
    read = []
    for i, node in enumerate(game.get_main_sequence()[1:]):
        colour, point = node.get_move()
        assert colour == "bw"[i % 2]
        read.append(coords.pass_move(size) if point is None else coords.to_flat(size, size - 1 - point[0], point[1]))
    assert read == moves.tolist()
    assert from_sgf_moves(text) == (size, 6.5, moves.tolist(), "B+R")


@pytest.mark.parametrize(
    "kw, result",
    [
        (dict(winner=2, score=-3.5), "W+3.5"),
        (dict(winner=1, score=0.5), "B+0.5"),
        (dict(winner=0, score=0.0), "0"),
        (dict(winner=0), "Void"),
        (dict(winner=2, resigned=True), "W+R"),
    ],
)
def test_result_property(kw, result):
    record = record_from_gtp(9, 7.0, ["E5", "pass", "pass"], **kw)
    text = to_sgf(record)
    assert f"RE[{result}]" in text
    assert "KM[7]" in text
    assert sgfmill_sgf.Sgf_game.from_string(text).get_root().get("RE") == result


def test_names_date_and_application_are_escaped():
    record = capture_record_9(code_version="1.2:rc]1")
    text = to_sgf(record, black_name="Black \\ ]player", white_name="gnugo", date=datetime.date(2024, 5, 6))
    root = sgfmill_sgf.Sgf_game.from_string(text).get_root()
    assert root.get("PB") == "Black \\ ]player"
    assert root.get("PW") == "gnugo"
    assert root.get("DT") == "2024-05-06"
    assert root.get("AP") == ("azgo", "1.2:rc]1")
    assert "model generation 123" in root.get("C") and "seed 5" in root.get("C")
    assert from_sgf_moves(text)[2] == [coords.from_gtp(9, v) for v in CAPTURE_GAME_9]


def test_move_comments_carry_root_value_and_visits():
    record = capture_record_9(full_search=[t != 1 for t in range(len(CAPTURE_GAME_9))])
    nodes = sgfmill_sgf.Sgf_game.from_string(to_sgf(record)).get_main_sequence()
    assert nodes[1].get("C") == "root value -0.900, 100 visits"
    assert nodes[2].get("C").endswith("101 visits (fast)")
    assert nodes[-1].get("C") == "root value +0.900, 109 visits"
    assert "C[" not in to_sgf(record, comments=False)


def test_player_names_sort_by_generation():
    names = [player_name(g) for g in (3, 20, 100, 999_999)]
    assert names == ["azgo-000003", "azgo-000020", "azgo-000100", "azgo-999999"]
    assert sorted(names) == names


def test_every_move_is_converted_by_coords():
    """On 19x19 every point (and pass) appears once: the SGF point of flat i is coords.to_sgf(19, i)."""
    moves = list(range(362))
    text = to_sgf(GameRecord.from_visits(19, 7.5, moves, [([m], [1]) for m in moves]), comments=False)
    assert ";B[aa];W[ba];B[ca]" in text and ";B[ss];W[])" in text
    assert from_sgf_moves(text)[2] == moves


# ---------------------------------------------------------------- the reader refuses what it cannot express


@pytest.mark.parametrize(
    "text, message",
    [
        ("(;SZ[9];W[ee])", "node 1: expected a move by B, found \\['W'\\]"),
        ("(;SZ[9];B[ee];B[dd])", "node 2: expected a move by W"),
        ("(;SZ[9]AB[ee];W[dd])", "node 0: setup properties \\['AB'\\]"),
        ("(;SZ[9];B[zz])", "node 1: 'zz' is not an SGF point on a 9x9 board"),
        ("(;SZ[4];B[aa])", "board size must be an integer from 5 to 19"),
        ("not sgf", "not a readable SGF game"),
    ],
)
def test_reader_errors(text, message):
    with pytest.raises(SgfError, match=message):
        from_sgf_moves(text)


def test_reader_accepts_tt_pass_bytes_and_missing_result():
    assert from_sgf_moves(b"(;SZ[9]KM[5.5];B[ee];W[tt];B[])") == (9, 5.5, [40, 81, 81], "")


# ---------------------------------------------------------------- GNU Go loads what we write


def gtp_session(sgf_path: str, commands: list[str]) -> tuple[dict[int, str], str]:
    """Run GNU Go in GTP mode on numbered commands; return {id: response} and stderr.

    A GTP response is ``=id text`` (success) or ``?id text`` (failure) followed by a blank line.
    """
    script = "".join(f"{i} {c}\n" for i, c in enumerate([f"loadsgf {sgf_path}", *commands], 1)) + "quit\n"
    proc = subprocess.run([GNUGO, "--mode", "gtp"], input=script, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    responses = {}
    for block in proc.stdout.split("\n\n"):
        block = block.strip()
        if block[:1] in ("=", "?") and block[1:2].isdigit():
            head, _, text = block.partition(" ")
            responses[int(head[1:])] = f"{head[0]} {text.strip()}".strip()
    return responses, proc.stderr


# under make test (AZGO_GNUGO set) a missing GNU Go fails these tests rather than skipping them
needs_gnugo = pytest.mark.skipif(not os.access(GNUGO, os.X_OK) and "AZGO_GNUGO" not in os.environ,
                                 reason="GNU Go is not installed (make test installs it)")


@needs_gnugo
@pytest.mark.parametrize(
    "size, komi, vertices, stones, captured, next_colour",
    [
        (9, 7.5, CAPTURE_GAME_9, CAPTURE_GAME_9_STONES, (1, 0), "black"),
        (13, 6.5, CAPTURE_GAME_13, CAPTURE_GAME_13_STONES, (0, 2), "black"),
    ],
)
def test_gnugo_loads_the_game_and_sees_our_stones(tmp_path, size, komi, vertices, stones, captured, next_colour):
    record = record_from_gtp(size, komi, vertices, winner=2, resigned=True, model_generation=42)
    path = tmp_path / "game.sgf"
    path.write_text(to_sgf(record), encoding="utf-8")
    r, stderr = gtp_session(str(path), ["list_stones black", "list_stones white", "captures black",
                                        "captures white", "get_komi", "query_boardsize", "showboard"])
    assert r[1] == f"= {next_colour}"  # loaded, and it is this colour's turn
    assert "WARNING" not in stderr and "ignored" not in stderr, stderr  # GNU Go skips illegal moves noisily
    assert set(r[2][2:].split()) == stones[0]
    assert set(r[3][2:].split()) == stones[1]
    assert (r[4], r[5]) == (f"= {captured[0]}", f"= {captured[1]}")
    assert float(r[6][2:]) == komi
    assert r[7] == f"= {size}"


@needs_gnugo
def test_gnugo_check_would_catch_an_illegal_move(tmp_path):
    """The checks above can fail: GNU Go warns on stderr and skips a move onto an occupied point."""
    path = tmp_path / "bad.sgf"
    path.write_text(to_sgf(record_from_gtp(9, 7.5, ["E5", "E5", "D4"])), encoding="utf-8")
    r, stderr = gtp_session(str(path), ["list_stones white"])
    assert "WARNING" in stderr
    assert r[2] == "="  # no white stone: E5 by white was skipped


@needs_gnugo
def test_gnugo_refuses_a_broken_file(tmp_path):
    """A truncated file is not silently loaded: GNU Go 3.8 exits with status 1 ('expected: ]')."""
    path = tmp_path / "broken.sgf"
    path.write_text(to_sgf(capture_record_9())[:-10], encoding="utf-8")
    proc = subprocess.run([GNUGO, "--mode", "gtp"], input=f"1 loadsgf {path}\nquit\n",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 or "?1" in proc.stdout
    assert "=1" not in proc.stdout


def test_capture_game_result_is_consistent():
    """The 9x9 game's record says W+4.5 (Tromp-Taylor count in the comment above)."""
    record = capture_record_9()
    assert record.result_string() == "W+4.5"
    assert not math.isnan(record.score)
