"""The GTP engine: every command and error string, and games against GNU Go (the reference for
legal moves and captures). The ``azgo gtp`` process is tested in ``tests/test_tools_cli.py``."""

from __future__ import annotations

import io
import random

import pytest
from gtp_client import play_against_gnugo

from azgo_core import __version__, coords
from azgo_core.gtp import RESIGN, GtpEngine, GtpError, clean_line, parse_command, take_response
from azgo_core.position import Position

REQUIRED = ["protocol_version", "name", "version", "known_command", "list_commands", "quit",
            "boardsize", "clear_board", "komi", "play", "genmove"]


class FirstLegal:
    """Plays the first legal point in flat order (top-left first), passing when none is left."""

    def genmove(self, position: Position) -> int:
        return int(position.legal_mask().nonzero()[0][0])


class RandomLegal:
    """A seeded random legal point; passes only when no point is legal."""

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)

    def genmove(self, position: Position) -> int:
        points = position.legal_mask()[:-1].nonzero()[0]
        return int(self.rng.choice(points)) if len(points) else coords.pass_move(position.size)


class Fixed:
    """Always answers the same move (to test resign and a misbehaving player)."""

    def __init__(self, move: int):
        self.move = move

    def genmove(self, position: Position) -> int:
        return self.move


def only_9x9(size: int):
    """Player factory of a network that only plays 9x9."""
    if size != 9:
        raise ValueError(f"this player plays 9x9, not {size}x{size}")
    return FirstLegal()


def session(script: str, engine: GtpEngine | None = None) -> str:
    """Everything the engine writes in answer to ``script``."""
    engine = engine or GtpEngine(player=FirstLegal())
    out = io.StringIO()
    engine.run(io.StringIO(script), out)
    return out.getvalue()


def ask(engine: GtpEngine, line: str) -> str:
    """One response, e.g. ``'= D4'`` or ``'? illegal move'``, without its terminating empty line."""
    response = engine.handle(parse_command(line))
    assert response.endswith("\n\n") and not response.endswith("\n\n\n")
    return response[:-2]


def play_all(engine: GtpEngine, moves: str) -> None:
    """Alternate B, W, B, ... through space-separated GTP vertices; all must be accepted."""
    for i, vertex in enumerate(moves.split()):
        assert ask(engine, f"play {'bw'[i % 2]} {vertex}") == "= ", vertex


@pytest.fixture
def engine() -> GtpEngine:
    return GtpEngine(player=FirstLegal())


# --- protocol ---------------------------------------------------------------------------
def test_preprocessing_drops_control_characters_comments_and_tabs():
    assert clean_line("na\x01me\r\n") == "name"
    assert clean_line("play\tb\tD4  # a comment") == "play b D4"
    assert clean_line("   # only a comment") == ""
    assert clean_line("\x7fname") == "name"


def test_responses_are_taken_whole_from_what_an_engine_wrote():
    buf = bytearray(b"\n=3 D4\n\n? unknown command\n\n= line one\nline two")
    assert take_response(buf) == ("=", 3, "D4")  # the stray empty line before it is skipped
    assert take_response(buf) == ("?", None, "unknown command")
    assert take_response(buf) is None and buf == bytearray(b"= line one\nline two")  # not yet ended
    buf += b"\n\n"
    assert take_response(buf) == ("=", None, "line one\nline two") and not buf
    with pytest.raises(GtpError, match="malformed response 'D4'"):
        take_response(bytearray(b"D4\n\n"))


def test_command_ids_are_parsed_and_echoed(engine):
    assert parse_command("12 name").id == 12
    assert parse_command("name").id is None
    assert ask(engine, "12 name") == "=12 azgo"
    assert ask(engine, "7 frobnicate") == "?7 unknown command"
    assert ask(engine, "3 boardsize 4") == "?3 unacceptable size"


def test_run_skips_empty_and_comment_lines_and_stops_at_quit():
    out = session("\n   \n# comment\n\tname\r\n1 protocol_version\nquit\nname\n")
    assert out == "= azgo\n\n=1 2\n\n= \n\n"


def test_run_stops_at_end_of_input():
    assert session("version") == f"= {__version__}\n\n"


def test_administrative_commands(engine):
    assert ask(engine, "protocol_version") == "= 2"
    assert ask(engine, "name") == "= azgo"
    assert ask(engine, "version") == f"= {__version__}"
    assert ask(engine, "known_command genmove") == "= true"
    assert ask(engine, "known_command frobnicate") == "= false"
    assert ask(engine, "known_command") == "? syntax error"
    listed = ask(engine, "list_commands")[2:].split("\n")
    assert set(REQUIRED + ["showboard", "undo", "final_score", "list_stones"]) <= set(listed)
    assert all(ask(engine, f"known_command {c}") == "= true" for c in listed)


def test_quit_answers_then_stops(engine):
    assert ask(engine, "quit") == "= "
    assert engine.done


def test_commands_are_case_sensitive_and_unknown_ones_answer_an_error(engine):
    assert ask(engine, "NAME") == "? unknown command"
    assert ask(engine, "__init__") == "? unknown command"
    assert ask(engine, "1") == "?1 unknown command"


# --- setup ------------------------------------------------------------------------------
def test_boardsize_accepts_5_to_19_and_clears_the_board(engine):
    play_all(engine, "D4")
    for bad in ("4", "20", "0", "-1"):
        assert ask(engine, f"boardsize {bad}") == "? unacceptable size"
    for bad in ("x", "9.5", ""):
        assert ask(engine, f"boardsize {bad}") == "? syntax error"
    assert ask(engine, "list_stones black") == "= D4"  # refused sizes leave the game alone
    assert ask(engine, "boardsize 19") == "= "
    assert ask(engine, "list_stones black") == "= "
    assert ask(engine, "play b T19") == "= "
    assert ask(engine, "boardsize 5") == "= "
    assert ask(engine, "play b F5") == "? syntax error"  # off a 5x5 board
    assert ask(engine, "play b E5") == "= "


def test_boardsize_the_player_cannot_play_is_unacceptable():
    engine = GtpEngine(player_factory=only_9x9)
    assert ask(engine, "boardsize 13") == "? unacceptable size"
    assert engine.size == 9
    assert ask(engine, "boardsize 9") == "= "
    assert ask(engine, "genmove b") == "= A9"


def test_clear_board(engine):
    play_all(engine, "D4 E5")
    assert ask(engine, "clear_board") == "= "
    assert ask(engine, "list_stones black") == "= "
    assert ask(engine, "list_stones white") == "= "
    assert ask(engine, "undo") == "? cannot undo"


def test_komi_sets_the_score_and_refuses_non_numbers(engine):
    assert ask(engine, "final_score") == "= W+7.5"
    assert ask(engine, "komi 0") == "= "
    assert ask(engine, "final_score") == "= 0"
    assert ask(engine, "komi -2.5") == "= "
    assert ask(engine, "final_score") == "= B+2.5"
    for bad in ("komi abc", "komi nan", "komi inf", "komi", "komi 1 2"):
        assert ask(engine, bad) == "? syntax error", bad
    assert engine.komi == -2.5


def test_komi_survives_clear_board(engine):
    ask(engine, "komi 6.5")
    ask(engine, "clear_board")
    assert ask(engine, "final_score") == "= W+6.5"


# --- play -------------------------------------------------------------------------------
def test_play_accepts_every_colour_spelling_and_any_case(engine):
    for colour, vertex in (("b", "A1"), ("W", "b1"), ("black", "C1"), ("WHITE", "d1")):
        assert ask(engine, f"play {colour} {vertex}") == "= "
    assert ask(engine, "list_stones black") == "= A1 C1"
    assert ask(engine, "list_stones white") == "= B1 D1"


def test_play_syntax_errors(engine):
    for bad in ("play x D4", "play b Z9", "play b I5", "play b D10", "play b", "play b D4 D5", "play D4 b",
                "play b resign"):
        assert ask(engine, bad) == "? syntax error", bad
    assert ask(engine, "list_stones black") == "= "


def test_play_occupied_is_illegal(engine):
    play_all(engine, "D4")
    assert ask(engine, "play w D4") == "? illegal move"
    assert ask(engine, "play b D4") == "? illegal move"


def test_play_suicide_is_illegal(engine):
    # . . .        white A1 would have no liberty and capture nothing
    # X . .
    # . X .
    play_all(engine, "A2 J9 B1")
    assert ask(engine, "play w A1") == "? illegal move"
    assert ask(engine, "list_stones white") == "= J9"


def test_play_ko_recapture_is_illegal_by_superko(engine):
    #   C D E F            after black E5 takes D5, white D5 would retake
    # 6 . X O .            and repeat the position before E5
    # 5 X O . O
    # 4 . X O .
    play_all(engine, "D6 E6 C5 D5 D4 E4 J1 F5 E5")
    assert ask(engine, "list_stones white") == "= E6 F5 E4"
    assert ask(engine, "play w D5") == "? illegal move"
    assert ask(engine, "play w J9") == "= "  # a ko threat elsewhere
    assert ask(engine, "play b A9") == "= "
    assert ask(engine, "play w D5") == "= "  # now it is a new position
    assert ask(engine, "list_stones black") == "= A9 D6 C5 D4 J1"


def test_play_captures(engine):
    play_all(engine, "A2 A1 B1")
    assert ask(engine, "list_stones white") == "= "
    assert ask(engine, "list_stones black") == "= A2 B1"


def test_play_pass_and_out_of_turn_moves(engine):
    assert ask(engine, "play b C3") == "= "
    assert ask(engine, "play b G7") == "= "  # black twice (a handicap stone): white passes between
    assert ask(engine, "list_stones black") == "= G7 C3"
    assert engine.position.to_play == 2
    assert ask(engine, "play w pass") == "= "
    assert ask(engine, "play b pass") == "= "
    assert engine.position.is_over
    assert ask(engine, "play w D4") == "? illegal move"  # the game is over


# --- genmove ----------------------------------------------------------------------------
def test_genmove_plays_and_returns_the_vertex(engine):
    assert ask(engine, "genmove b") == "= A9"
    assert ask(engine, "genmove white") == "= B9"
    assert ask(engine, "list_stones black") == "= A9"
    assert ask(engine, "list_stones white") == "= B9"


def test_genmove_out_of_turn_plays_for_the_asked_colour(engine):
    play_all(engine, "A9")
    assert ask(engine, "genmove b") == "= B9"
    assert ask(engine, "list_stones black") == "= A9 B9"
    assert ask(engine, "genmove w") == "= C9"


def test_genmove_syntax_errors(engine):
    for bad in ("genmove", "genmove x", "genmove b w"):
        assert ask(engine, bad) == "? syntax error", bad


def test_genmove_resign_leaves_the_board_alone():
    engine = GtpEngine(player=Fixed(RESIGN))
    assert ask(engine, "genmove b") == "= resign"
    assert engine.position.n_moves == 0
    assert ask(engine, "undo") == "? cannot undo"


def test_genmove_pass_and_after_the_game_is_over():
    engine = GtpEngine(player=Fixed(81))
    assert ask(engine, "genmove b") == "= pass"
    assert ask(engine, "genmove w") == "= pass"
    assert engine.position.is_over
    assert ask(engine, "genmove b") == "= pass"
    assert engine.position.n_moves == 2


def test_genmove_refuses_an_illegal_choice_of_the_player():
    engine = GtpEngine(player=Fixed(coords.from_gtp(9, "E5")))
    play_all(engine, "E5")
    assert ask(engine, "genmove w").startswith("? internal error")
    assert ask(engine, "list_stones white") == "= "


def test_genmove_with_factory_builds_the_player_for_the_board_size():
    sizes = []

    def factory(size):
        sizes.append(size)
        return FirstLegal()

    engine = GtpEngine(player_factory=factory, size=7)
    assert sizes == []  # lazily: nothing is built before it is needed
    assert ask(engine, "genmove b") == "= A7"
    assert ask(engine, "boardsize 13") == "= "
    assert ask(engine, "genmove b") == "= A13"
    assert sizes == [7, 13]


def test_player_sees_a_copy():
    class Vandal:
        def genmove(self, position):
            position.play(0)
            return 1

    engine = GtpEngine(player=Vandal())
    assert ask(engine, "genmove b") == "= B9"
    assert ask(engine, "list_stones black") == "= B9"


# --- undo, scoring, display -------------------------------------------------------------
def test_undo_steps_back_one_move_at_a_time(engine):
    assert ask(engine, "undo") == "? cannot undo"
    play_all(engine, "D4 E5")
    assert ask(engine, "genmove b") == "= A9"
    assert ask(engine, "undo") == "= "
    assert ask(engine, "list_stones black") == "= D4"
    assert ask(engine, "undo") == "= "
    assert ask(engine, "list_stones white") == "= "
    assert engine.position.to_play == 2
    assert ask(engine, "undo") == "= "
    assert ask(engine, "undo") == "? cannot undo"
    assert engine.position.n_moves == 0


def test_undo_restores_captured_stones_and_ko(engine):
    play_all(engine, "D6 E6 C5 D5 D4 E4 J1 F5 E5")
    assert ask(engine, "undo") == "= "
    assert ask(engine, "list_stones white") == "= E6 D5 F5 E4"
    assert ask(engine, "play b E5") == "= "
    assert ask(engine, "play w D5") == "? illegal move"


def test_undo_of_an_out_of_turn_move_undoes_its_inserted_pass(engine):
    play_all(engine, "D4")
    assert ask(engine, "play b E5") == "= "
    assert ask(engine, "undo") == "= "
    assert engine.position.n_moves == 1 and engine.position.to_play == 2


def test_final_score_is_tromp_taylor_area(engine):
    assert ask(engine, "final_score") == "= W+7.5"
    play_all(engine, "D4")
    assert ask(engine, "final_score") == "= B+73.5"  # black owns all 81 points
    assert ask(engine, "play w E5") == "= "
    assert ask(engine, "final_score") == "= W+7.5"  # nobody owns anything: 1 - 1 - 7.5


def test_list_stones_errors(engine):
    for bad in ("list_stones", "list_stones red", "list_stones black white"):
        assert ask(engine, bad) == "? syntax error", bad


def test_showboard_draws_the_board(engine):
    play_all(engine, "D4 E5")
    text = ask(engine, "showboard")
    assert text.startswith("= \n")
    lines = text.split("\n")[1:]
    assert lines[0].split() == list("ABCDEFGHJ")
    assert lines[1].split() == ["9"] + ["."] * 9 + ["9"]
    assert lines[5].split() == ["5", ".", ".", ".", ".", "O", ".", ".", ".", ".", "5"]
    assert lines[6].split() == ["4", ".", ".", ".", "X", ".", ".", ".", ".", ".", "4"]
    assert "black to play" in lines[-1] and "komi 7.5" in lines[-1]
    assert "" not in lines  # an empty line would end the response early


def test_time_commands_are_accepted_and_checked(engine):
    assert ask(engine, "time_settings 300 30 5") == "= "
    assert ask(engine, "time_left b 290 0") == "= "
    assert ask(engine, "time_left b") == "? syntax error"


def test_a_failing_handler_answers_an_error_and_the_engine_lives_on():
    class Broken:
        def genmove(self, position):
            raise RuntimeError("network on fire")

    engine = GtpEngine(player=Broken())
    assert ask(engine, "genmove b") == "? internal error: RuntimeError: network on fire"
    assert ask(engine, "name") == "= azgo"


def test_engine_needs_exactly_one_player_source():
    with pytest.raises(ValueError, match="exactly one"):
        GtpEngine()
    with pytest.raises(ValueError, match="exactly one"):
        GtpEngine(player=FirstLegal(), player_factory=only_9x9)


# --- against GNU Go ---------------------------------------------------------------------
class InProcess:
    """``GtpClient``'s ``send`` over an in-process engine."""

    def __init__(self, engine: GtpEngine):
        self.engine = engine

    def send(self, command: str, allow_failure: bool = False) -> str:
        response = ask(self.engine, command)
        assert allow_failure or response.startswith("="), f"{command!r}: {response!r}"
        return response[2:] if response.startswith("=") else "?" + response[2:]


@pytest.mark.parametrize("our_colour", ["b", "w"])
def test_random_player_against_gnugo_every_move_accepted_and_boards_agree(our_colour):
    engine = GtpEngine(player=RandomLegal(seed=7), size=9)
    moves = play_against_gnugo(InProcess(engine), size=9, max_moves=120, our_colour=our_colour)
    ours = moves[0 if our_colour == "b" else 1::2]
    assert len(ours) >= 20 and sum(m != "pass" for m in ours) >= 20
