"""``check_batch`` (what the broker calls: the fast columnar check) decides as ``validate_batch`` does.

Every batch gets the same outcome from both: accepted, or refused with the same error code
and the same reason naming the game and the move. (Before its compiled check is ready,
``check_batch`` is ``validate_batch``; this is about after.)
"""

from __future__ import annotations

import lz4.frame
import pytest
from broker_helpers import batch, game, play_games, tiny_settings

from azgo_broker.validate import BatchRejected, BatchRules, check_batch, fast_path_ready, validate_batch

RULES = BatchRules(board_size=5, komi=7.5, max_games=50, max_bytes=1 << 20)


@pytest.fixture(scope="module")
def games():
    return play_games(tiny_settings(), 4, "w1", generation=0)


def outcome(check, msg, blob, rules, published):
    try:
        check(msg, blob, rules, published)
    except BatchRejected as e:
        return e.code, e.reason
    return "accepted"


def cases(games):
    """(name, (msg, blobs), rules, published) of accepted and refused batches."""
    lz = lz4.frame.compress(b"\x81\xa1v\x01", store_size=True)
    yield "self-play", batch("b", "w1", games), RULES, {0}
    yield "uncompressed", batch("b", "w1", games, compress=False), RULES, {0}
    yield "games count", batch("b", "w1", games, games=5), RULES, {0}
    yield "positions", batch("b", "w1", games, positions=1), RULES, {0}
    yield "generations", batch("b", "w1", games, generations=[0, 1]), RULES, {0, 1}
    yield "generation unpublished", batch("b", "w1", games), RULES, ()
    yield "foreign games", batch("b", "w2", games), RULES, {0}
    yield "board size", batch("b", "w", [game([0, 1]), game([0, 1], size=7)]), RULES, {0}
    yield "komi", batch("b", "w", [game([0], komi=5.5)]), RULES, {0}
    yield "occupied", batch("b", "w", [game([0, 1, 2]), game([0, 6, 12, 0])]), RULES, {0}
    yield "after two passes", batch("b", "w", [game([25, 25, 3])]), RULES, {0}
    yield "suicide", batch("b", "w", [game([1, 0, 5, 24, 6, 0])]), RULES, {0}
    yield "ko recapture", batch("b", "w", [game([1, 2, 5, 6, 11, 8, 24, 12, 7, 6])]), RULES, {0}
    yield "too large", (batch("b", "w1", games)[0], [b"x" * 2048]), BatchRules(5, 7.5, 50, 1024), {0}
    yield "too many games", batch("b", "w1", games), BatchRules(5, 7.5, 2, 1 << 20), {0}
    yield "not a batch", (batch("b", "w1", games)[0], [b"\x92not a batch"]), RULES, {0}
    yield "lz4 of a non-batch", (batch("b", "w1", games)[0], [lz]), RULES, {0}


def test_check_batch_decides_as_validate_batch(games):
    assert fast_path_ready(timeout=600)  # compiled (or loaded from numba's cache) in its thread
    seen = {}
    for name, (msg, blobs), rules, published in cases(games):
        fast = outcome(check_batch, msg, blobs[0], rules, published)
        assert fast == outcome(validate_batch, msg, blobs[0], rules, published), name
        seen[name] = fast
    assert seen["self-play"] == seen["uncompressed"] == "accepted"
    assert sum(v == "accepted" for v in seen.values()) == 2  # every other case is a refusal
    assert "illegal move" in seen["ko recapture"][1] and "superko" in seen["ko recapture"][1]
    assert "suicide" in seen["suicide"][1] and "game 0, move 6" in seen["suicide"][1]
