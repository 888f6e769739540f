"""``make bench-core``'s reference for legal masks: OpenSpiel's C++ Go replays the benchmark's
random games move for move, and agrees with our rules on every legal move but superko (which
it does not check beyond the simple ko)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from azgo_core.position import Position, zobrist

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_core.py"


def bench_core():
    spec = importlib.util.spec_from_file_location("bench_core", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_openspiel_replays_the_benchmark_games_and_agrees_on_legal_moves():
    bench, N, games = bench_core(), 7, 40
    moves = np.full((games, 2 * N * N), -1, np.int32)
    lengths = np.zeros(games, np.int32)
    bench._random_games(N, zobrist(N), games, 11, moves, lengths)
    game = bench.pyspiel_game(N, moves.shape[1])
    positions = superko_only = ended = 0
    for actions in bench.pyspiel_actions(moves, lengths, N):
        ours, theirs = Position(N, move_cap=moves.shape[1]), game.new_initial_state()
        for action in actions:
            mask = ours.legal_mask()
            their_mask = np.array(theirs.legal_actions_mask(), bool)
            assert not (mask & ~their_mask).any(), f"a move we allow is illegal for OpenSpiel, move {len(ours.moves)}"
            for move in np.flatnonzero(their_mask & ~mask):
                assert ours.why_illegal(int(move)) == "superko", (move, ours.why_illegal(int(move)))
                superko_only += 1
            ours.play(action)
            theirs.apply_action(action)  # raises when OpenSpiel refuses the move
            positions += 1
        if actions[-2:] == [N * N, N * N]:  # the benchmark's games end on two passes (or at the move cap)
            assert theirs.is_terminal()
            ended += 1
    assert ended > games // 2 and positions > 20 * games and superko_only < positions // 100
    assert bench._pyspiel_masks(game, bench.pyspiel_actions(moves[:2], lengths[:2], N)) == lengths[:2].sum()
