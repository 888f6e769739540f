"""Training: sampling positions from a window of self-play games, and one optimisation step.

Data of one training batch (``Batch``), B positions, board N, history H, C = 2H+1:

    planes  uint8   [B, C, N, N]   network input of the side to move (``azgo_core.features``)
    pi      float32 [B, N*N+1]     normalised root visit counts N(s, a) / sum_b N(s, b)
    z       float32 [B]            game result for the side to move: +1 won, -1 lost, 0 draw

KataGo's auxiliary targets (Wu 2019), derived from the record's moves, for nets with
``aux_heads``:

    own       int8    [B, N*N]     final Tromp-Taylor owner for the side to move: +1 its point,
                                   -1 the opponent's, 0 dame (``Position.ownership``)
    score     float32 [B]          final score for the side to move, komi included (points)
    finished  float32 [B]          1 when the game ended by two passes: only then are ``own``
                                   and ``score`` a finished position's (a resigned game or one
                                   stopped at the move cap has none, and is weighted out)
    opp       int16   [B]          the opponent's reply (the move after the one to play), or
                                   -1 when the game ended first

Each sample gets one of the 8 board symmetries at random, applied to planes, pi, own and opp.

Loss (AlphaZero): ``l = -pi . log p + w (z - v)^2 + c ||theta||^2`` averaged over the batch,
with c = ``weight_decay`` applied to convolution and linear weights (batch-norm parameters
and biases are not decayed, as in most reimplementations). With SGD the L2 term is part of
the loss, exactly as written above; with AdamW the decay is decoupled inside the optimiser
and the L2 term is only reported. With auxiliary heads (KataGo's weights, the score's chosen
here) it adds, over the samples that have each target:

    w_own   * mean over points of BCE(ownership logit, (1 + own) / 2)     w_own   = 1.5
    w_score * Huber(score head, score / N)   (delta 1: a point per row)    w_score = 0.25
    w_opp   * -log p_opp(opp)                                              w_opp   = 0.15

The score is divided by N so that its scale (a few units) matches the value's; Huber rather
than a square because wipe-outs (every stone captured, score/N near N) are common early in
training and would dominate a squared loss.

Learning rate: linear warm-up over ``warmup_steps`` (from lr/warmup_steps up to lr), then
constant, multiplied by ``lr_gamma`` at each of ``lr_milestones`` (a step schedule, as in
AlphaGo Zero). A step schedule rather than cosine because reinforcement learning has no
known final step: a cosine would need one.

Playout-cap randomization (KataGo): only moves chosen by a full search are policy targets,
so the sampler draws only from positions with ``full_search`` set (and visits recorded).
Their value targets come with them; cheap-search positions are not used at all, which wastes
some value data but keeps one sample = one (pi, z) pair.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch.nn import functional as F

from azgo_core.board import BLACK, EMPTY
from azgo_core.features import NUM_SYMMETRIES, apply_symmetry_planes, apply_symmetry_policy, num_planes, planes_from_history
from azgo_core.model import AZNet, NetOutputs
from azgo_core.params import TrainConfig
from azgo_core.position import Position
from azgo_core.records import GameRecord

# --------------------------------------------------------------------------- config





class WarmupStepSchedule:
    """LR multiplier at optimiser step s: ``min(1, (s+1)/warmup) * gamma ** (milestones passed)``.

    A class rather than a lambda so ``LambdaLR.state_dict()`` can save it.
    """

    def __init__(self, warmup_steps: int, milestones: Sequence[int], gamma: float) -> None:
        self.warmup_steps = int(warmup_steps)
        self.milestones = [int(m) for m in milestones]
        self.gamma = float(gamma)

    def __call__(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        return warm * self.gamma ** bisect.bisect_right(self.milestones, step)


def _decayed(name: str, p: torch.nn.Parameter) -> bool:
    """Convolution and linear weights are decayed; biases and batch-norm parameters are not."""
    return p.dim() >= 2


def make_optimizer(net: AZNet, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The optimiser (two parameter groups: decayed weights first, then the rest) and its schedule."""
    decay = [p for n, p in net.named_parameters() if p.requires_grad and _decayed(n, p)]
    other = [p for n, p in net.named_parameters() if p.requires_grad and not _decayed(n, p)]
    if cfg.optimizer == "sgd":
        # L2 is added to the loss in train_step, so the optimiser itself does not decay.
        groups = [{"params": decay, "weight_decay": 0.0}, {"params": other, "weight_decay": 0.0}]
        optimizer: torch.optim.Optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    else:
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    schedule = WarmupStepSchedule(cfg.warmup_steps, cfg.lr_milestones, cfg.lr_gamma)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


# --------------------------------------------------------------------------- sampling


class Batch(NamedTuple):
    """planes uint8 [B, C, N, N], pi float32 [B, N*N+1], z float32 [B], and optionally the
    auxiliary targets own int8 [B, N*N], score float32 [B], finished float32 [B], opp int16 [B]
    (see the module docstring; None: no auxiliary loss)."""

    planes: np.ndarray
    pi: np.ndarray
    z: np.ndarray
    own: np.ndarray | None = None
    score: np.ndarray | None = None
    finished: np.ndarray | None = None
    opp: np.ndarray | None = None


class _Game:
    """One record in the window: its policy-target move indices and, once needed, its replay.

    ``stones`` int8 [T, N*N] is the board before each move, ``to_play`` int8 [T] the side
    to move then and ``owner`` int8 [N*N] the final position's owners (BLACK, WHITE, EMPTY);
    they are filled lazily (one replay per game, not one per sample). ``finished``: the game
    ended by two passes, so ``owner`` and the record's score describe a finished position.
    """

    __slots__ = ("record", "targets", "stones", "to_play", "owner", "finished")

    def __init__(self, record: GameRecord) -> None:
        self.record = record
        counts = np.concatenate([[0], np.cumsum(record.visit_counts, dtype=np.int64)])
        off = record.visit_offsets
        visited = counts[off[1:]] > counts[off[:-1]]
        self.targets = np.flatnonzero(record.full_search & visited).astype(np.int32)
        self.stones: np.ndarray | None = None
        self.to_play: np.ndarray | None = None
        self.owner: np.ndarray | None = None
        pass_move = record.board_size * record.board_size
        self.finished = (not record.resigned and record.num_moves >= 2 and math.isfinite(record.score)
                         and int(record.moves[-1]) == pass_move and int(record.moves[-2]) == pass_move)

    def replay(self, label: str) -> None:
        r = self.record
        n, t_len = r.board_size, r.num_moves
        pos = Position(n, r.komi, move_cap=max(t_len, 2 * n * n))
        stones = np.empty((t_len, n * n), np.int8)
        to_play = np.empty(t_len, np.int8)
        for t, move in enumerate(r.moves):
            stones[t] = pos.stones()
            to_play[t] = pos.to_play
            try:
                pos.play(int(move))
            except ValueError as exc:
                raise ValueError(f"{label}: move {t} cannot be replayed: {exc}") from None
        self.owner = pos.ownership()
        self.stones, self.to_play = stones, to_play  # only a complete replay is cached


class PositionSampler:
    """Uniform sampling of training positions from the most recent games.

    ``PositionSampler(records, history=8, window=None)``: records oldest first. The window is
    the last ``window`` policy-target positions (moves with ``full_search`` and recorded
    visits), counted over all games added so far; games wholly older than the window are
    dropped. ``add(records)`` appends newer games as they arrive (and renumbers the games, so
    indices from ``sample_indices`` are valid only until the next ``add``).
    """

    def __init__(self, records: Iterable[GameRecord] = (), history: int = 8, window: int | None = None) -> None:
        if not isinstance(history, int) or history < 1:
            raise ValueError(f"history must be a positive integer, got {history!r}")
        if window is not None and (not isinstance(window, int) or window < 1):
            raise ValueError(f"window must be a positive integer or None, got {window!r}")
        self.history = history
        self.window = window
        self.board_size: int | None = None
        self.games: list[_Game] = []
        self.total_added = 0  # policy-target positions ever added (for samples-per-position ratios)
        self._counts = np.zeros(0, np.int64)  # policy targets per game in self.games
        self._cum = np.zeros(0, np.int64)  # their cumulative sums
        self.add(records)

    def add(self, records: Iterable[GameRecord]) -> None:
        """Append newer games, then drop games that fell wholly out of the window."""
        new: list[_Game] = []
        size = self.board_size
        for i, r in enumerate(records):  # check them all before changing anything
            if not isinstance(r, GameRecord):
                raise TypeError(f"record {i}: expected a GameRecord, got {type(r).__name__}")
            size = r.board_size if size is None else size
            if r.board_size != size:
                raise ValueError(f"record {i}: board size {r.board_size}, but the window holds {size}x{size} games")
            new.append(_Game(r))
        self.board_size = size
        self.games.extend(new)
        self.total_added += sum(len(g.targets) for g in new)
        counts = np.array([len(g.targets) for g in self.games], np.int64)
        if self.window is not None and len(counts):
            # a game is wholly outside the window when the games after it fill the window
            newer = np.cumsum(counts[::-1])[::-1] - counts  # targets in the games after each one
            first = int(np.count_nonzero(newer >= self.window))  # newer is non-increasing: a prefix
            self.games = self.games[first:]
            counts = counts[first:]
        self._counts = counts
        self._cum = np.cumsum(counts)

    def __len__(self) -> int:
        """Positions that can be sampled (at most ``window``)."""
        total = int(self._cum[-1]) if len(self._cum) else 0
        return total if self.window is None else min(total, self.window)

    def sample_indices(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(game index int64 [B], move index int64 [B]), uniform over the window's positions."""
        if len(self) == 0:
            raise ValueError("no policy-target positions to sample from (empty window)")
        total = int(self._cum[-1])
        u = rng.integers(total - len(self), total, size=batch_size)
        g = np.searchsorted(self._cum, u, side="right")
        local = u - (self._cum[g] - self._counts[g])  # offset inside game g's targets
        t = np.array([self.games[gi].targets[li] for gi, li in zip(g, local)], np.int64)
        return g.astype(np.int64), t

    def build(self, games: Sequence[int], moves: Sequence[int], symmetries: Sequence[int] | None = None) -> Batch:
        """The batch of positions (game ``games[i]``, before move ``moves[i]``) under the given
        symmetries, with the auxiliary targets."""
        n, h = self.board_size, self.history
        b = len(games)
        planes = np.zeros((b, num_planes(h), n, n), np.uint8)
        pi = np.zeros((b, n * n + 1), np.float32)
        z = np.zeros(b, np.float32)
        own = np.zeros((b, n * n), np.int8)
        score = np.zeros(b, np.float32)
        finished = np.zeros(b, np.float32)
        opp = np.full(b, -1, np.int16)
        for i, (gi, t) in enumerate(zip(games, moves)):
            game = self.games[int(gi)]
            record, t = game.record, int(t)
            if game.stones is None:
                game.replay(f"game {int(gi)} of the window")
            recent = np.ascontiguousarray(game.stones[max(0, t - h + 1) : t + 1][::-1])
            to_play = int(game.to_play[t])
            planes_from_history(recent, len(recent), to_play, planes[i])
            pi[i] = record.policy_target(t)
            winner = record.winner
            z[i] = 0.0 if winner == 0 else (1.0 if winner == to_play else -1.0)
            sign = 1 if to_play == BLACK else -1  # the record's owners and score are black's view
            if game.finished:
                own[i] = np.where(game.owner == to_play, 1, np.where(game.owner == EMPTY, 0, -1))
                score[i] = sign * record.score
                finished[i] = 1.0
            if t + 1 < record.num_moves:
                opp[i] = record.moves[t + 1]
        if symmetries is not None:
            ks = np.asarray(symmetries)
            for k in np.unique(ks):
                if k:
                    sel = ks == k
                    planes[sel] = apply_symmetry_planes(planes[sel], int(k))
                    pi[sel] = apply_symmetry_policy(pi[sel], int(k))
                    own[sel] = apply_symmetry_planes(own[sel].reshape(-1, 1, n, n), int(k)).reshape(-1, n * n)
                    opp[sel] = _move_under_symmetry(opp[sel], n, int(k))
        return Batch(planes, pi, z, own, score, finished, opp)

    def sample(self, batch_size: int, rng: np.random.Generator, augment: bool = True) -> Batch:
        """``batch_size`` uniform positions, each under a random symmetry if ``augment``."""
        games, moves = self.sample_indices(batch_size, rng)
        syms = rng.integers(0, NUM_SYMMETRIES, size=batch_size) if augment else None
        return self.build(games, moves, syms)


def _move_under_symmetry(moves: np.ndarray, n: int, k: int) -> np.ndarray:
    """Flat moves int16 [B] (pass = N*N, -1 none) mapped by symmetry ``k`` as the policy is."""
    onehot = np.zeros((len(moves), n * n + 1), np.float32)
    some = moves >= 0
    onehot[np.flatnonzero(some), moves[some]] = 1.0
    mapped = apply_symmetry_policy(onehot, k).argmax(axis=1).astype(np.int16)
    return np.where(some, mapped, -1).astype(np.int16)


# --------------------------------------------------------------------------- step


def _as_batch_tensors(batch, net: AZNet, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    planes, pi, z = batch[:3]
    c, n = net.config.in_planes, net.config.board_size
    planes, pi, z = torch.as_tensor(planes), torch.as_tensor(pi), torch.as_tensor(z)
    b = planes.shape[0] if planes.dim() == 4 else -1
    if planes.shape != (b, c, n, n) or pi.shape != (b, n * n + 1) or z.shape != (b,) or b < 1:
        raise ValueError(
            f"batch shapes planes {list(planes.shape)}, pi {list(pi.shape)}, z {list(z.shape)}; "
            f"expected [B, {c}, {n}, {n}], [B, {n * n + 1}], [B] with B >= 1"
        )
    x = planes.to(device, non_blocking=True).float()
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x, pi.to(device, torch.float32), z.to(device, torch.float32)


def _aux_tensors(batch, n: int, device: torch.device) -> tuple[torch.Tensor, ...] | None:
    """(own [B, N*N], score [B], finished [B], opp int64 [B]) on ``device``, or None when the
    batch carries no auxiliary targets (a plain ``(planes, pi, z)``)."""
    if len(batch) < 7 or any(x is None for x in batch[3:7]):
        return None
    own, score, finished, opp = (torch.as_tensor(np.asarray(x)) for x in batch[3:7])
    b = len(batch[2])
    if own.shape != (b, n * n) or score.shape != (b,) or finished.shape != (b,) or opp.shape != (b,):
        raise ValueError(
            f"auxiliary target shapes own {list(own.shape)}, score {list(score.shape)}, finished "
            f"{list(finished.shape)}, opp {list(opp.shape)}; expected [B, {n * n}], [B], [B], [B] with B = {b}"
        )
    return (own.to(device, torch.float32), score.to(device, torch.float32), finished.to(device, torch.float32),
            opp.to(device, torch.int64))


def _masked_mean(per_sample: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_sample`` [B] over the samples where ``mask`` [B] is 1 (0 when none is)."""
    return (per_sample * mask).sum() / mask.sum().clamp_min(1.0)


def auxiliary_losses(out: NetOutputs, aux: tuple[torch.Tensor, ...], n: int) -> dict[str, torch.Tensor]:
    """KataGo's auxiliary losses (see the module docstring), each averaged over the samples
    that have its target: ownership and score over finished games, the opponent's reply over
    positions that have one."""
    own, score, finished, opp = aux
    own_bce = F.binary_cross_entropy_with_logits(out.ownership.float(), (1.0 + own) / 2.0, reduction="none").mean(dim=1)
    score_huber = F.smooth_l1_loss(out.score.float(), score / n, reduction="none", beta=1.0)
    has_reply = (opp >= 0).float()
    opp_ce = F.cross_entropy(out.opponent_logits.float(), opp.clamp_min(0), reduction="none")
    return {
        "ownership_loss": _masked_mean(own_bce, finished),
        "score_loss": _masked_mean(score_huber, finished),
        "opponent_policy_loss": _masked_mean(opp_ce, has_reply),
    }


def l2_penalty(net: AZNet, weight_decay: float) -> torch.Tensor:
    """``c * sum(theta^2)`` over the decayed parameters (conv and linear weights)."""
    squares = [p.pow(2).sum() for n, p in net.named_parameters() if p.requires_grad and _decayed(n, p)]
    return weight_decay * torch.stack(squares).sum()


def train_step(net: AZNet, optimizer: torch.optim.Optimizer, scheduler, batch, cfg: TrainConfig) -> dict[str, float]:
    """One gradient step on ``batch``: a ``Batch`` or (planes [B, C, N, N], pi [B, N*N+1], z [B]).

    Returns metrics (floats): loss = policy_loss + w * value_loss (+ the weighted auxiliary
    losses); total_loss (the objective, loss + l2 under SGD); policy_loss (cross-entropy with
    the soft targets pi); policy_kl (policy_loss minus the targets' entropy: 0 when the policy
    matches pi exactly); value_loss (mean squared error); ownership_loss, score_loss,
    opponent_policy_loss (only when the net has auxiliary heads and the batch their targets);
    l2; lr (used for this step); grad_norm (before clipping); policy_entropy (of the network's
    policy); policy_accuracy (argmax agreement); value_mean.
    Raises FloatingPointError, without touching the weights, if the loss is not finite.
    """
    device = next(net.parameters()).device
    x, pi, z = _as_batch_tensors(batch, net, device)
    aux = _aux_tensors(batch, net.config.board_size, device) if net.config.aux_heads else None
    net.train()
    autocast_dtype = torch.bfloat16 if device.type == "cuda" else None
    with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        out = net.heads(x) if aux is not None else NetOutputs(*net(x))
    logits, value = out.logits.float(), out.value.float()
    log_p = F.log_softmax(logits, dim=1)
    policy_loss = -(pi * log_p).sum(dim=1).mean()
    value_loss = F.mse_loss(value, z)
    l2 = l2_penalty(net, cfg.weight_decay)
    loss = policy_loss + cfg.value_loss_weight * value_loss
    extra: dict[str, torch.Tensor] = {}
    if aux is not None:
        extra = auxiliary_losses(out, aux, net.config.board_size)
        loss = (loss + cfg.ownership_loss_weight * extra["ownership_loss"] + cfg.score_loss_weight * extra["score_loss"]
                 + cfg.opponent_policy_loss_weight * extra["opponent_policy_loss"])
    total = loss + l2 if cfg.optimizer == "sgd" else loss
    if not torch.isfinite(total):
        raise FloatingPointError(
            f"non-finite loss (policy {policy_loss.item()}, value {value_loss.item()}, l2 {l2.item()}, "
            f"auxiliary {[round(v.item(), 4) for v in extra.values()]}): step skipped"
        )
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip if cfg.grad_clip else math.inf)
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    scheduler.step()
    with torch.no_grad():
        target_entropy = -(pi * torch.log(pi.clamp_min(1e-30))).sum(dim=1).mean()
        entropy = -(log_p.exp() * log_p).sum(dim=1).mean()
        accuracy = (logits.argmax(dim=1) == pi.argmax(dim=1)).float().mean()
    return {
        "loss": loss.item(),
        "total_loss": total.item(),
        "policy_loss": policy_loss.item(),
        "policy_kl": (policy_loss - target_entropy).item(),
        "value_loss": value_loss.item(),
        **{k: v.item() for k, v in extra.items()},
        "l2": l2.item(),
        "lr": float(lr),
        "grad_norm": float(grad_norm),
        "policy_entropy": entropy.item(),
        "policy_accuracy": accuracy.item(),
        "value_mean": value.mean().item(),
    }
