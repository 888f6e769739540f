"""KataGo's auxiliary targets and heads: ownership and score of finished games, the opponent's
reply, their losses, global pooling, and model files saved before the heads existed."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from azgo_core.features import apply_symmetry_planes, apply_symmetry_policy
from azgo_core.model import AZNet, NetConfig, load_model, serialize_model
from azgo_core.position import BLACK, EMPTY, WHITE, Position
from azgo_core.records import GameRecord
from azgo_core.train import Batch, PositionSampler, TrainConfig, make_optimizer, train_step

SIZE, HISTORY = 5, 2


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_net(seed: int = 0, **flags) -> AZNet:
    """A small net with the heads and pooling on (they are off by default) unless ``flags`` says otherwise."""
    torch.manual_seed(seed)
    flags = {"aux_heads": True, "global_pooling": True, **flags}
    return AZNet(NetConfig(board_size=SIZE, history=HISTORY, blocks=2, channels=16, value_hidden=16, **flags))


def played_game(rng: np.random.Generator, moves_before_passes: int, *, passes: int = 2, resigned_by: int = 0) -> GameRecord:
    """Random legal moves, then ``passes`` passes; scored when it ended by two passes, else
    resigned by ``resigned_by`` (or left with the current count when 0)."""
    pos = Position(SIZE, komi=0.5)
    moves, visits = [], []
    for t in range(moves_before_passes + passes):
        legal = np.flatnonzero(pos.legal_mask())
        points = legal[legal != SIZE * SIZE]
        move = SIZE * SIZE if t >= moves_before_passes or not len(points) else int(rng.choice(points))
        visits.append(([move], [8]))
        moves.append(move)
        pos.play(move)
    if resigned_by:
        return GameRecord.from_visits(SIZE, 0.5, moves, visits, winner=3 - resigned_by, resigned=True)
    return GameRecord.from_visits(SIZE, 0.5, moves, visits, winner=pos.winner(), score=pos.score())


# --------------------------------------------------------------------------- ownership


def test_ownership_counts_stones_as_they_stand_and_shared_liberties_as_dame():
    # Black's eye at b4 is black's; a dead white stone at d4 inside black's area still counts
    # for white (Tromp-Taylor removes nothing) and makes its neighbour e4 dame; c2 is a shared
    # liberty of a black and a white group (seki): dame; a1 and e1 are white's.
    pos = Position.from_ascii(
        """
        X X X X X
        X . X O .
        X X X X X
        O O . X O
        . O O O .
        """,
        komi=0.5,
    )
    b, w, e = BLACK, WHITE, EMPTY
    expected = np.array(
        [
            [b, b, b, b, b],
            [b, b, b, w, e],
            [b, b, b, b, b],
            [w, w, e, b, w],
            [w, w, w, w, w],
        ],
        np.int8,
    ).reshape(-1)
    np.testing.assert_array_equal(pos.ownership(), expected)
    area = int(np.count_nonzero(expected == b)) - int(np.count_nonzero(expected == w))
    assert pos.area() == area == 14 - 9
    assert pos.score() == area - 0.5


def test_ownership_of_an_empty_board_is_all_dame():
    assert not Position(SIZE).ownership().any()


# --------------------------------------------------------------------------- sampler targets


def test_sampler_gives_finished_games_ownership_score_and_reply_for_the_side_to_move():
    rng = np.random.default_rng(3)
    record = played_game(rng, 14)
    final = Position(SIZE, komi=0.5)
    for m in record.moves:
        final.play(int(m))
    owner = final.ownership()
    sampler = PositionSampler([record], history=HISTORY)
    t_all = np.arange(record.num_moves)
    batch = sampler.build(np.zeros_like(t_all), t_all)
    assert (batch.finished == 1.0).all()
    for t in t_all:
        to_play = BLACK if t % 2 == 0 else WHITE  # no handicap: black first, alternating
        sign = 1 if to_play == BLACK else -1
        expected_own = np.where(owner == to_play, 1, np.where(owner == EMPTY, 0, -1))
        np.testing.assert_array_equal(batch.own[t], expected_own)
        assert batch.score[t] == pytest.approx(sign * record.score)
        assert batch.opp[t] == (record.moves[t + 1] if t + 1 < record.num_moves else -1)
    assert batch.own[0].sum() == record.score + 0.5  # black's view at move 0: area, komi aside
    assert {1, -1} <= set(np.unique(batch.own))


def test_resigned_and_unfinished_games_carry_no_ownership_or_score():
    rng = np.random.default_rng(4)
    resigned = played_game(rng, 12, passes=0, resigned_by=WHITE)
    unfinished = played_game(rng, 12, passes=1)  # one pass, then the move cap or a stop
    sampler = PositionSampler([resigned, unfinished], history=HISTORY)
    batch = sampler.build([0, 1, 1], [3, 5, unfinished.num_moves - 1])
    assert not batch.finished.any()
    assert not batch.own.any() and not batch.score.any()
    assert list(batch.opp) == [resigned.moves[4], unfinished.moves[6], -1]


def test_symmetries_move_ownership_and_reply_with_the_planes():
    rng = np.random.default_rng(5)
    sampler = PositionSampler([played_game(rng, 16)], history=HISTORY)
    moves = np.arange(0, 15)
    plain = sampler.build(np.zeros_like(moves), moves)
    for k in range(1, 8):
        turned = sampler.build(np.zeros_like(moves), moves, np.full(len(moves), k))
        np.testing.assert_array_equal(turned.planes, apply_symmetry_planes(plain.planes, k))
        own = apply_symmetry_planes(plain.own.reshape(-1, SIZE, SIZE), k).reshape(-1, SIZE * SIZE)
        np.testing.assert_array_equal(turned.own, own)
        onehot = np.zeros((len(moves), SIZE * SIZE + 1), np.float32)
        onehot[np.arange(len(moves)), plain.opp] = 1.0
        np.testing.assert_array_equal(turned.opp, apply_symmetry_policy(onehot, k).argmax(axis=1))


# --------------------------------------------------------------------------- losses


def finished_games(seed: int, count: int = 8) -> list[GameRecord]:
    rng = np.random.default_rng(seed)
    return [played_game(rng, int(rng.integers(8, 18))) for _ in range(count)]


def test_every_loss_falls_when_overfitting_a_small_set():
    sampler = PositionSampler(finished_games(11), history=HISTORY)
    batch = sampler.sample(64, np.random.default_rng(1))
    _, keep = np.unique(batch.planes.reshape(len(batch.z), -1), axis=0, return_index=True)
    batch = Batch(*(x[keep] for x in batch))
    assert len(batch.z) > 30 and batch.finished.all()
    net = tiny_net(1)
    cfg = TrainConfig(batch_size=len(batch.z), lr=0.05, warmup_steps=10)
    optimizer, scheduler = make_optimizer(net, cfg)
    history = [train_step(net, optimizer, scheduler, batch, cfg) for _ in range(200)]
    first, last = history[0], history[-1]
    # a dame point's target is 1/2: its cross-entropy cannot fall below log 2
    floor = {"ownership_loss": float(np.log(2) * (batch.own == 0).mean())}
    for key in ("ownership_loss", "score_loss", "opponent_policy_loss", "policy_kl", "value_loss"):
        low = floor.get(key, 0.0)
        assert last[key] - low < (first[key] - low) / 3, (key, first[key], last[key], low)


def test_the_loss_weights_each_auxiliary_term_as_configured():
    sampler = PositionSampler(finished_games(12), history=HISTORY)
    batch = sampler.sample(32, np.random.default_rng(2))
    weights = {"ownership_loss_weight": 0.7, "score_loss_weight": 3.0, "opponent_policy_loss_weight": 0.4}
    cfg = TrainConfig(batch_size=32, value_loss_weight=2.0, **weights)
    net = tiny_net(2)
    m = train_step(net, *make_optimizer(net, cfg), batch, cfg)
    expected = (m["policy_loss"] + 2.0 * m["value_loss"] + 0.7 * m["ownership_loss"] + 3.0 * m["score_loss"]
                + 0.4 * m["opponent_policy_loss"])
    assert m["loss"] == pytest.approx(expected, rel=1e-5)
    assert all(m[k] > 0 for k in ("ownership_loss", "score_loss", "opponent_policy_loss"))


def test_targets_from_unfinished_games_do_not_move_the_ownership_and_score_heads():
    rng = np.random.default_rng(6)
    sampler = PositionSampler([played_game(rng, 10, passes=0, resigned_by=BLACK) for _ in range(4)], history=HISTORY)
    batch = sampler.sample(16, np.random.default_rng(3))
    net = tiny_net(3)
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    # no weight decay: its L2 term moves every weight a little (below float32's resolution only
    # at some learning rates), and this test is about the heads' losses alone
    cfg = TrainConfig(batch_size=16, weight_decay=0.0)
    m = train_step(net, *make_optimizer(net, cfg), batch, cfg)
    assert m["ownership_loss"] == 0.0 and m["score_loss"] == 0.0
    after = net.state_dict()
    assert torch.equal(before["ownership_conv.weight"], after["ownership_conv.weight"])
    assert torch.equal(before["score_fc.weight"], after["score_fc.weight"])
    assert not torch.equal(before["opponent_fc.weight"], after["opponent_fc.weight"])


def test_a_net_without_heads_trains_on_the_same_batches():
    sampler = PositionSampler(finished_games(13, 3), history=HISTORY)
    batch = sampler.sample(16, np.random.default_rng(4))
    net = tiny_net(4, aux_heads=False, global_pooling=False)
    cfg = TrainConfig(batch_size=16)
    m = train_step(net, *make_optimizer(net, cfg), batch, cfg)
    assert "ownership_loss" not in m and m["loss"] == pytest.approx(m["policy_loss"] + m["value_loss"])


# --------------------------------------------------------------------------- network


def test_forward_is_heads_without_the_auxiliary_outputs_and_pooling_sees_the_whole_board():
    net = tiny_net(5).eval()
    assert [type(b).__name__ for b in net.tower] == ["ResidualBlock", "GlobalPoolingBlock"]
    x = torch.rand(3, 2 * HISTORY + 1, SIZE, SIZE)
    logits, value = net(x)
    out = net.heads(x)
    assert torch.equal(logits, out.logits) and torch.equal(value, out.value)
    assert out.ownership.shape == (3, SIZE * SIZE) and out.score.shape == (3,)
    assert out.opponent_logits.shape == (3, SIZE * SIZE + 1)


def test_global_pooling_lets_one_corner_see_the_other():
    # stem + two blocks are five 3x3 convolutions: without pooling a 9x9 corner cannot see
    # the opposite one (8 rows away); the pooled bias carries the change across
    def towers(global_pooling: bool) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(0)
        net = AZNet(NetConfig(board_size=9, history=1, blocks=2, channels=16, global_pooling=global_pooling)).eval()
        x = torch.zeros(1, 3, 9, 9)
        far = x.clone()
        far[0, 0, 0, 0] = 1.0
        with torch.no_grad():
            return net.tower(net.stem(x))[0, :, 8, 8], net.tower(net.stem(far))[0, :, 8, 8]

    assert not torch.allclose(*towers(True))
    assert torch.equal(*towers(False))


def _without_new_fields(blob: bytes) -> bytes:
    """The file a model saved before the auxiliary heads would be: the same tensors and an
    architecture JSON without ``aux_heads`` and ``global_pooling``."""
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    arch = json.loads(header["__metadata__"]["architecture"])
    del arch["aux_heads"], arch["global_pooling"]
    header["__metadata__"]["architecture"] = json.dumps(arch, sort_keys=True, separators=(",", ":"))
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob[8 + n :]


def test_models_saved_before_the_heads_still_load_as_plain_policy_value_nets():
    old = tiny_net(6, aux_heads=False, global_pooling=False)
    blob = _without_new_fields(serialize_model(old, generation=3))
    net, meta = load_model(blob, expected_board_size=SIZE)
    assert meta.config.aux_heads is False and meta.config.global_pooling is False
    assert not hasattr(net, "ownership_conv")
    x = torch.rand(2, 2 * HISTORY + 1, SIZE, SIZE)
    assert torch.equal(net(x)[0], old.eval()(x)[0])
    assert net.heads(x).ownership is None


def test_new_models_round_trip_with_their_heads():
    net = tiny_net(7)
    loaded, meta = load_model(serialize_model(net, generation=1), expected_board_size=SIZE)
    assert meta.config.aux_heads and meta.config.global_pooling
    x = torch.rand(2, 2 * HISTORY + 1, SIZE, SIZE)
    assert torch.equal(loaded.heads(x).ownership, net.eval().heads(x).ownership)


def test_architecture_flags_must_be_booleans():
    with pytest.raises(ValueError, match="aux_heads"):
        NetConfig(aux_heads=1)
    with pytest.raises(ValueError, match="unknown"):
        NetConfig.from_json('{"board_size": 9, "history": 8, "blocks": 1, "channels": 8, "value_hidden": 8, "x": 1}')
