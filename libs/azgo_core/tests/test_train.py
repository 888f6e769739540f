"""Tests for azgo_core.train: config, LR schedule, the sampler's targets, and learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from azgo_core.features import apply_symmetry_planes, apply_symmetry_policy
from azgo_core.model import AZNet, NetConfig
from azgo_core.position import BLACK, WHITE, Position
from azgo_core.records import GameRecord
from azgo_core.train import Batch, PositionSampler, TrainConfig, make_optimizer, train_step

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SIZE, HISTORY = 5, 2


def tiny_net(seed: int = 0, size: int = SIZE, history: int = HISTORY) -> AZNet:
    torch.manual_seed(seed)
    return AZNet(NetConfig(board_size=size, history=history, blocks=1, channels=16, value_hidden=16))


def random_game(rng: np.random.Generator, size: int = SIZE, max_moves: int = 30, cheap_prob: float = 0.5) -> GameRecord:
    """A game of random legal moves (passing only when nothing else is legal), with fake
    visit counts: most visits on the move played, a few on other legal moves."""
    pos = Position(size, komi=0.5)
    moves, visits = [], []
    while not pos.is_over and len(moves) < max_moves:
        legal = np.flatnonzero(pos.legal_mask())
        points = legal[legal != size * size]
        move = int(rng.choice(points)) if len(points) else size * size
        others = rng.choice(legal, size=min(2, len(legal)), replace=False)
        children = sorted({move, *map(int, others)})
        counts = [10 if c == move else int(rng.integers(1, 4)) for c in children]
        visits.append((children, counts))
        moves.append(move)
        pos.play(move)
    full = rng.random(len(moves)) >= cheap_prob
    return GameRecord.from_visits(
        size, 0.5, moves, visits, full_search=full, winner=pos.winner(), score=pos.score(), seed=int(rng.integers(1 << 30))
    )


def replay_planes(record: GameRecord, t: int, history: int = HISTORY) -> tuple[np.ndarray, int]:
    pos = Position(record.board_size, record.komi)
    for m in record.moves[:t]:
        pos.play(int(m))
    return pos.planes(history), pos.to_play


# --------------------------------------------------------------------------- config and schedule


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="lr_milestones"):
        TrainConfig(lr_milestones=(500, 100))
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=0.0)


def test_warmup_then_step_schedule():
    net = tiny_net()
    cfg = TrainConfig(lr=0.1, warmup_steps=4, lr_milestones=(6, 8), lr_gamma=0.1)
    optimizer, scheduler = make_optimizer(net, cfg)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [0.025, 0.05, 0.075, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    np.testing.assert_allclose(lrs, expected, rtol=1e-9)
    # the schedule survives a state_dict round trip (learner restarts)
    _, restored = make_optimizer(net, cfg)
    restored.load_state_dict(scheduler.state_dict())
    assert restored.last_epoch == scheduler.last_epoch


def test_only_weights_are_decayed():
    net = tiny_net()
    optimizer, _ = make_optimizer(net, TrainConfig(optimizer="adamw", weight_decay=1e-3))
    decayed, other = optimizer.param_groups
    assert decayed["weight_decay"] == 1e-3 and other["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() == 1 for p in other["params"])
    assert len(decayed["params"]) + len(other["params"]) == len(list(net.parameters()))


# --------------------------------------------------------------------------- train_step


def synthetic_batch(rng: np.random.Generator, b: int = 32) -> Batch:
    c, n = 2 * HISTORY + 1, SIZE
    planes = rng.integers(0, 2, size=(b, c, n, n), dtype=np.uint8)
    pi = np.zeros((b, n * n + 1), np.float32)
    pi[np.arange(b), rng.integers(0, n * n + 1, b)] = 1.0
    z = rng.choice([-1.0, 1.0], b).astype(np.float32)
    return Batch(planes, pi, z)


def test_train_step_overfits_a_fixed_synthetic_batch():
    rng = np.random.default_rng(0)
    batch = synthetic_batch(rng)
    net = tiny_net()
    cfg = TrainConfig(batch_size=32, lr=0.05, warmup_steps=10)
    optimizer, scheduler = make_optimizer(net, cfg)
    history = [train_step(net, optimizer, scheduler, batch, cfg) for _ in range(100)]
    first, last = history[0], history[-1]
    assert set(first) >= {"loss", "policy_loss", "value_loss", "l2", "lr", "grad_norm", "policy_entropy"}
    assert all(np.isfinite(v) for m in history for v in m.values())
    assert last["loss"] < first["loss"] / 10, (first, last)
    assert last["policy_accuracy"] == 1.0
    assert first["lr"] == pytest.approx(0.005) and last["lr"] == pytest.approx(0.05)
    assert last["total_loss"] == pytest.approx(last["loss"] + last["l2"])  # SGD: L2 is in the objective
    assert first["l2"] > 0


def test_train_step_refuses_bad_batches_without_stepping():
    rng = np.random.default_rng(1)
    net = tiny_net()
    cfg = TrainConfig()
    optimizer, scheduler = make_optimizer(net, cfg)
    planes, pi, z = synthetic_batch(rng, 4)[:3]
    with pytest.raises(ValueError, match="expected"):
        train_step(net, optimizer, scheduler, (planes, pi[:, :-1], z), cfg)
    with pytest.raises(ValueError, match="expected"):
        train_step(net, optimizer, scheduler, (planes, pi, z[:3]), cfg)
    before = [p.detach().clone() for p in net.parameters()]
    bad_z = z.copy()
    bad_z[0] = np.nan
    with pytest.raises(FloatingPointError, match="non-finite"):
        train_step(net, optimizer, scheduler, (planes, pi, bad_z), cfg)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


# --------------------------------------------------------------------------- sampler


@pytest.fixture(scope="module")
def games() -> list[GameRecord]:
    rng = np.random.default_rng(42)
    return [random_game(rng, max_moves=int(rng.integers(15, 45))) for _ in range(8)]


def test_sampler_targets_match_an_independent_replay(games):
    sampler = PositionSampler(games, history=HISTORY)
    checked = 0
    for gi, record in enumerate(games):
        for t in np.flatnonzero(record.full_search):
            batch = sampler.build([gi], [t])
            planes, to_play = replay_planes(record, int(t))
            np.testing.assert_array_equal(batch.planes[0], planes)
            np.testing.assert_allclose(batch.pi[0], record.policy_target(int(t)))
            assert batch.pi[0].sum() == pytest.approx(1.0)
            expected_z = 1.0 if record.winner == to_play else -1.0
            assert batch.z[0] == expected_z
            checked += 1
    assert checked > 20
    assert {r.winner for r in games} == {BLACK, WHITE}  # both signs of z were exercised


def test_sampler_draws_only_full_search_positions(games):
    sampler = PositionSampler(games, history=HISTORY)
    eligible = {(gi, int(t)) for gi, r in enumerate(games) for t in np.flatnonzero(r.full_search)}
    assert len(sampler) == len(eligible) == sampler.total_added
    g, t = sampler.sample_indices(2000, np.random.default_rng(0))
    drawn = set(zip(g.tolist(), t.tolist()))
    assert drawn <= eligible
    assert len(drawn) > 0.9 * len(eligible)  # and roughly all of them, uniformly


def test_sampler_window_keeps_the_newest_positions(games):
    counts = [int(r.full_search.sum()) for r in games]
    window = counts[-1] + counts[-2] + 1  # the last two games and one position of the third-last
    sampler = PositionSampler(games[:3], history=HISTORY, window=window)
    sampler.add(games[3:])
    assert len(sampler) == window
    assert [g.record for g in sampler.games] == games[-3:]  # older games were dropped
    g, t = sampler.sample_indices(3000, np.random.default_rng(1))
    oldest = sampler.games[0].record
    from_oldest = set(t[g == 0].tolist())
    assert from_oldest == {int(np.flatnonzero(oldest.full_search)[-1])}  # only its last target
    assert sampler.total_added == sum(counts)


def test_sampler_symmetries_keep_planes_and_policy_consistent(games):
    sampler = PositionSampler(games, history=HISTORY)
    record = games[0]
    targets = np.flatnonzero(record.full_search)
    t = int(targets[targets < record.num_moves - 1][0])
    plain = sampler.build([0], [t])
    following = sampler.build([0], [t + 1])  # the position after move t
    move = int(record.moves[t])
    for k in range(8):
        sym = sampler.build([0], [t], [k])
        np.testing.assert_array_equal(sym.planes, apply_symmetry_planes(plain.planes, k))
        np.testing.assert_array_equal(sym.pi, apply_symmetry_policy(plain.pi, k))
        assert sym.z[0] == plain.z[0]
        # the played move, carried to its image by the policy, is where the board gets the new stone
        one_hot = np.zeros((1, SIZE * SIZE + 1), np.float32)
        one_hot[0, move] = 1.0
        image = int(np.argmax(apply_symmetry_policy(one_hot, k)))
        after = apply_symmetry_planes(following.planes, k)[0]
        if move != SIZE * SIZE:
            r, c = divmod(image, SIZE)
            assert after[1, r, c] == 1  # the opponent (who just moved) now has a stone there
            assert sym.planes[0, 0, r, c] == 0 and sym.planes[0, 1, r, c] == 0


def test_sampler_refuses_mixed_sizes_and_empty_windows(games):
    rng = np.random.default_rng(3)
    with pytest.raises(ValueError, match="board size 7"):
        PositionSampler([games[0], random_game(rng, size=7)], history=HISTORY)
    with pytest.raises(ValueError, match="empty"):
        PositionSampler([], history=HISTORY).sample(4, rng)


def test_illegal_record_names_game_and_move(games):
    r = games[0]
    bad = GameRecord.from_visits(
        SIZE, 0.5, [0, 0], [([0], [1]), ([0], [1])], winner=BLACK, score=1.5
    )  # the second move is on an occupied point
    sampler = PositionSampler([r, bad], history=HISTORY)
    with pytest.raises(ValueError, match="game 1 .*move 1 .*occupied"):
        sampler.build([1], [1])


# --------------------------------------------------------------------------- learning from games


def test_net_overfits_positions_from_random_games(games):
    sampler = PositionSampler(games, history=HISTORY)
    batch = sampler.sample(96, np.random.default_rng(7))
    # identical inputs with different targets cannot be fitted: keep one of each
    _, keep = np.unique(batch.planes.reshape(len(batch.z), -1), axis=0, return_index=True)
    batch = Batch(batch.planes[keep], batch.pi[keep], batch.z[keep])
    assert len(batch.z) > 40
    net = tiny_net(seed=1)
    cfg = TrainConfig(batch_size=len(batch.z), lr=0.05, warmup_steps=10)
    optimizer, scheduler = make_optimizer(net, cfg)
    history = [train_step(net, optimizer, scheduler, batch, cfg) for _ in range(150)]

    def excess(m):  # loss above what the soft targets allow
        return m["policy_kl"] + m["value_loss"]

    assert excess(history[-1]) < excess(history[0]) / 10, (history[0], history[-1])
    assert history[-1]["policy_accuracy"] == 1.0
