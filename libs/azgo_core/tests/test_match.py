"""The match referee: games end by the rules, colours alternate, cheats forfeit, SGF parses in sgfmill."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sgfmill import sgf as sgfmill_sgf

from azgo_core import coords
from azgo_core.gtp import RESIGN
from azgo_core.match import MatchGame, PositionPlayer, RandomPlayer, opening_book, play_game, play_match
from azgo_core.position import BLACK, WHITE, Position
from azgo_core.search import MctsPlayer, SearchConfig, uniform_evaluator
from azgo_core.sgf import from_sgf_moves


class Scripted(PositionPlayer):
    """Plays the given GTP vertices in order (then passes); remembers what it was told."""

    def __init__(self, name: str, vertices: list[str]):
        super().__init__(None, name)
        self.vertices = list(vertices)
        self.heard: list[tuple[int, int]] = []
        self.games = 0

    def new_game(self, size: int, komi: float, seed: int = 0) -> None:
        self.games += 1

    def genmove(self, position: Position) -> int:
        if not self.vertices:
            return coords.pass_move(position.size)
        v = self.vertices.pop(0)
        return RESIGN if v == "resign" else coords.from_gtp(position.size, v)

    def play(self, colour: int, move: int) -> None:
        self.heard.append((colour, move))


def test_random_games_end_and_are_scored_by_the_rules():
    game = play_game(RandomPlayer(1, "r1"), RandomPlayer(2, "r2"), 5, 7.5)
    assert game.reason in ("score", "move cap")
    replay = Position(5, 7.5)
    for move in game.moves:
        replay.play(move)
    assert replay.is_over
    assert game.score == replay.score() and game.winner == replay.winner()
    assert game.result_string() == replay.result_string()


def test_colours_alternate_and_results_are_from_a_s_view():
    a, b = RandomPlayer(3, "a"), RandomPlayer(4, "b")
    seen = []
    result = play_match(a, b, 4, 5, 7.5, on_game=lambda i, g, a_black: seen.append((i, g.black, g.white, a_black)))
    assert [(g.black, g.white) for g in result.games] == [("a", "b"), ("b", "a"), ("a", "b"), ("b", "a")]
    assert [s[3] for s in seen] == [True, False, True, False]
    for game, a_black, points in zip(result.games, result.a_black, result.points()):
        a_colour = BLACK if a_black else WHITE
        assert points == (1.0 if game.winner == a_colour else 0.0 if game.winner else 0.5)
    assert result.wins + result.draws + result.losses == 4
    score, low, high = result.score()
    assert low <= score <= high


def test_the_opponent_hears_every_move_and_each_game_starts_fresh():
    black = Scripted("black", ["C3", "B2"])
    white = Scripted("white", ["D4"])
    game = play_game(black, white, 5, 7.5)
    assert game.moves[:3] == [coords.from_gtp(5, "C3"), coords.from_gtp(5, "D4"), coords.from_gtp(5, "B2")]
    assert white.heard[:2] == [(BLACK, coords.from_gtp(5, "C3")), (BLACK, coords.from_gtp(5, "B2"))]
    assert black.heard[0] == (WHITE, coords.from_gtp(5, "D4"))
    assert game.reason == "score" and black.games == white.games == 1


def test_an_illegal_move_forfeits():
    game = play_game(Scripted("cheat", ["C3", "C3"]), Scripted("fair", ["D4"]), 5, 7.5)
    assert game.reason == "forfeit" and game.winner == WHITE
    assert game.result_string() == "W+F" and "C3 (occupied)" in game.detail
    assert math.isnan(game.score)


def test_resignation_ends_the_game():
    game = play_game(Scripted("b", ["C3"]), Scripted("w", ["resign"]), 5, 7.5)
    assert game.reason == "resign" and game.winner == BLACK and game.result_string() == "B+R"
    assert game.to_record().resigned


def test_draw_is_half_a_point():
    game = MatchGame(5, 0.0, "x", "y", [], 0, 0.0, "score")
    assert game.result_string() == "0" and game.points_for(True) == game.points_for(False) == 0.5


def test_random_player_never_fills_its_own_eye():
    pos = Position.from_ascii("""
        .X...
        X....
        .....
        .....
        .....
    """, to_play=BLACK)
    eye = coords.from_gtp(5, "A5")
    moves = {RandomPlayer(seed).genmove(pos) for seed in range(200)}
    assert eye not in moves and len(moves) > 10


def test_random_player_passes_when_only_eyes_are_left():
    pos = Position.from_ascii("""
        .X.X.
        XXXXX
        XXXXX
        XXXXX
        .X.X.
    """, to_play=BLACK)
    assert RandomPlayer(0).genmove(pos) == coords.pass_move(5)


def test_a_search_player_plays_whole_games_through_the_adapter():
    searcher = PositionPlayer(MctsPlayer(uniform_evaluator, visits=8, config=SearchConfig(visits=8, cheap_visits=8)),
                              "mcts8")
    result = play_match(searcher, RandomPlayer(5), 2, 5, 7.5)
    assert [g.reason in ("score", "move cap") for g in result.games] == [True, True]  # no forfeit: every move legal
    assert result.games[0].black == "mcts8" and result.games[1].white == "mcts8"


@pytest.mark.parametrize("black_moves, white_moves", [(["C3", "B2"], ["D4"]), (["C3", "C3"], ["D4"])],
                         ids=["scored", "forfeit"])
def test_match_sgf_parses_in_sgfmill_and_replays(black_moves, white_moves):
    game = play_game(Scripted("azgo-000003", black_moves), Scripted("gnugo-l1", white_moves), 5, 7.5)
    text = game.to_sgf(about="evaluation of 000003", date="2026-01-02")
    root = sgfmill_sgf.Sgf_game.from_string(text).get_root()
    assert root.get("PB") == "azgo-000003" and root.get("PW") == "gnugo-l1"
    assert root.get("RE") == game.result_string()
    assert "evaluation of 000003" in root.get("C") and game.reason in root.get("C")
    size, komi, moves, result = from_sgf_moves(text)
    assert (size, komi, moves, result) == (5, 7.5, game.moves, game.result_string())


def test_random_vs_random_sgf_round_trip():
    game = play_game(RandomPlayer(11), RandomPlayer(12, "random-2"), 7, 9.0)
    size, komi, moves, result = from_sgf_moves(game.to_sgf())
    assert moves == game.moves and size == 7 and komi == 9.0 and result == game.result_string()
    assert np.all(np.array(moves) <= 49)


def mcts(visits, name, taste=None):
    """A deterministic search player; ``taste`` seeds fixed priors of its own (None: uniform)."""
    evaluate = uniform_evaluator
    if taste is not None:
        prior = np.random.default_rng(taste).normal(size=50).astype(np.float32)

        def evaluate(planes):
            logits, values = uniform_evaluator(planes)
            return logits + prior[: logits.shape[1]], values
    return PositionPlayer(MctsPlayer(evaluate, visits=visits, config=SearchConfig(visits=visits, cheap_visits=visits)), name)


def test_a_match_between_two_fixed_players_is_made_of_distinct_games():
    """Two deterministic players: without openings a 10-game match would be 2 games, 5 times each."""
    a, b = mcts(8, "mcts8", taste=1), mcts(16, "mcts16", taste=2)
    result = play_match(a, b, 10, 7, 9.0, seed=3)
    sequences = [tuple(g.moves) for g in result.games]
    assert len(set(sequences)) == 10
    for k in range(5):  # each pair shares its opening, colours swapped
        first, second = result.games[2 * k], result.games[2 * k + 1]
        assert first.moves[:2] == second.moves[:2] and first.opening == second.opening == 2
        assert (first.black, second.black) == ("mcts8", "mcts16")
    assert len({tuple(g.moves[:2]) for g in result.games}) == 5
    assert "opening book" in result.games[0].to_sgf()
    # the same seed replays the same match; another seed plays other games
    again = play_match(a, b, 4, 7, 9.0, seed=3)
    assert [tuple(g.moves) for g in again.games] == sequences[:4]
    other = play_match(a, b, 4, 7, 9.0, seed=4)
    assert not {tuple(g.moves) for g in other.games} & set(sequences)


def test_opening_book():
    book = opening_book(9, 20, seed=1)
    assert len(book) == 20 and len({tuple(o) for o in book}) == 20
    for line in book:
        pos = Position(9, 7.5)
        for m in line:
            r, c = divmod(m, 9)
            assert 1 <= r <= 7 and 1 <= c <= 7 and pos.legal(m)  # off the first line, legal
            pos.play(m)
    assert opening_book(9, 20, seed=1) == book and opening_book(9, 20, seed=2) != book
    assert opening_book(5, 3, seed=0, moves=0) == [[], [], []]
    tiny = opening_book(5, 1000, seed=0, moves=1)  # 25 distinct one-move openings, then repeats
    assert len({tuple(o) for o in tiny}) == 25 and tiny[25] == tiny[0]


def test_each_game_gets_its_own_seed_and_the_opponent_hears_the_opening():
    class Seeds(Scripted):
        def __init__(self, name):
            super().__init__(name, [])
            self.seeds = []

        def new_game(self, size, komi, seed=0):
            self.seeds.append(seed)
            self.heard.clear()

    a, b = Seeds("a"), Seeds("b")
    result = play_match(a, b, 4, 5, 7.5, seed=9)
    assert len(set(a.seeds)) == 4 and a.seeds == b.seeds
    assert b.heard[:2] == [(BLACK, result.games[-1].moves[0]), (WHITE, result.games[-1].moves[1])]
