"""The match runner against real GNU Go over GTP on small boards: GNU Go beats random, games are legal SGF."""

from __future__ import annotations

import os

import pytest
from sgfmill import sgf as sgfmill_sgf

from azgo_core import coords
from azgo_core.match import RandomPlayer, play_game, play_match
from azgo_core.position import BLACK, WHITE, Position
from azgo_core.sgf import from_sgf_moves
from azgo_runtime.engines import SpecError, gnugo_player, make_player, parse_spec
from azgo_runtime.gtp_player import GtpEngineError, GtpPlayer

GNUGO = os.environ.get("AZGO_GNUGO", "/usr/games/gnugo")
# under make test (AZGO_GNUGO set) a missing GNU Go fails these tests rather than skipping them
pytestmark = pytest.mark.skipif(not os.access(GNUGO, os.X_OK) and "AZGO_GNUGO" not in os.environ,
                                reason=f"GNU Go not found at {GNUGO} (set AZGO_GNUGO)")


def test_gnugo_beats_random_with_either_colour_on_7x7():
    gnugo = gnugo_player(1, GNUGO)
    try:
        result = play_match(gnugo, RandomPlayer(7), 2, 7, 7.5)
    finally:
        gnugo.close()
    assert [g.black for g in result.games] == ["gnugo-l1", "random"]
    assert result.wins == 2, [g.result_string() for g in result.games]
    for game in result.games:
        assert game.reason in ("score", "move cap")
        replay = Position(7, 7.5)
        for move in game.moves:
            replay.play(move)
        assert replay.score() == game.score  # the referee's Tromp-Taylor count
        root = sgfmill_sgf.Sgf_game.from_string(game.to_sgf()).get_root()
        assert root.get("RE") == game.result_string() and root.get("SZ") == 7
        assert from_sgf_moves(game.to_sgf())[2] == game.moves


def test_a_match_against_gnugo_has_ten_distinct_games():
    """GNU Go is deterministic for a seed: openings and a seed per game make every game differ."""
    from azgo_core.match import PositionPlayer
    from azgo_core.search import MctsPlayer, SearchConfig, uniform_evaluator

    ours = PositionPlayer(MctsPlayer(uniform_evaluator, visits=4, config=SearchConfig(visits=4, cheap_visits=4)), "mcts4")
    gnugo, other = gnugo_player(1, GNUGO), gnugo_player(1, GNUGO)
    try:
        result = play_match(gnugo, ours, 10, 7, 9.0, seed=5)
        # GNU Go against itself after the same first move: the seed alone makes the games differ
        replies = [play_game(gnugo, other, 9, 7.5, opening=[40], seed=s, move_cap=3).moves[1] for s in range(6)]
    finally:
        gnugo.close()
        other.close()
    assert len({tuple(g.moves) for g in result.games}) == 10
    assert len(set(replies)) > 1, replies


def test_gnugo_against_itself_keeps_its_board_in_step_on_5x5():
    # each engine hears the other's moves: a desynchronised board would make one of them refuse a move
    black, white = gnugo_player(0, GNUGO), GtpPlayer([GNUGO, "--mode", "gtp", "--level", "0", "--chinese-rules",
                                                     "--positional-superko", "--capture-all-dead"], name="gnugo-b")
    try:
        game = play_game(black, white, 5, 7.5)
        assert game.winner in (BLACK, WHITE) and game.reason in ("score", "resign")  # GNU Go resigns lost games
        stones = white.engine.send("list_stones black").split()
        pos = Position(5, 7.5)
        for move in game.moves:
            pos.play(move)
        assert sorted(stones) == sorted(pos_vertices(pos, BLACK)) and stones
    finally:
        black.close()
        white.close()


def pos_vertices(pos: Position, colour: int) -> list[str]:
    return [coords.to_gtp(pos.size, int(p)) for p in (pos.stones() == colour).nonzero()[0]]


def test_a_dead_engine_is_an_error_not_a_hang():
    player = GtpPlayer(["sh", "-c", "read line; echo '= fake'; echo; exit 0"], timeout=5)
    assert player.name == "fake"
    with pytest.raises(GtpEngineError, match="exited|closed"):
        player.new_game(5, 7.5)
    player.close()


def test_engine_specs():
    assert parse_spec("gnugo").arg == "1" and parse_spec("gnugo:7").arg == "7"
    assert parse_spec("random").kind == "random"
    assert parse_spec("gtp:gnugo --mode gtp").arg == "gnugo --mode gtp"
    spec = parse_spec("data/broker/models/000003.safetensors:50")
    assert (spec.kind, spec.arg, spec.visits) == ("model", "data/broker/models/000003.safetensors", 50)
    for bad, words in [("gnugo:11", "level"), ("nothing-here", "not random"), ("gtp:", "command line"), ("", "empty")]:
        with pytest.raises(SpecError, match=words):
            parse_spec(bad)
    with pytest.raises(SpecError, match="cannot read model"):
        make_player(parse_spec("missing.safetensors:10"), size=5)
