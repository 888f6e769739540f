"""Ratings from game results: a Bradley-Terry (Elo) maximum-likelihood fit, and match score intervals.

The Bradley-Terry model gives every player a strength ``r`` (natural units) and says that
player i beats player j with probability ``p_ij = sigmoid(r_i - r_j)``. Elo is the same
scale times ``400 / ln 10``: 100 Elo apart is a 64% expected score, 400 apart 91%.

Data:

==============  ================================================================================
result          ``(player, opponent, score)``: one game, score 1 (player won), 0.5 (draw), 0 (lost)
W  [P, P]       W[i, j]: points i scored against j (wins + draws / 2)
N  [P, P]       N[i, j] = N[j, i]: games between i and j
prior_draws     virtual draws added to every pair that met (BayesElo's prior): keeps a player
                who won every game at a finite rating; 0 is the plain maximum likelihood
anchor          the player held at ``anchor_elo`` (random play = 0 by convention); only
                differences are identifiable, so everything is relative to it
==============  ================================================================================

``fit_ratings`` maximises ``L(r) = sum_ij W[i, j] log p_ij`` by Newton's method with the
anchor fixed. The intervals come from the Fisher information: the covariance of the free
ratings is the inverse of ``-d2L/dr2`` at the optimum, so each interval is the rating
``+- z * stderr`` relative to the anchor. A player with no chain of games to the anchor has
no identifiable rating: it gets NaN.

``score_interval`` is the Wilson interval of one match's score (draws as half a win), and
``elo_difference`` turns a score into the Elo gap it implies.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

ELO_PER_NAT = 400.0 / math.log(10.0)
MAX_STEP = 2.0  # Newton steps are clipped to this many nats: robust from a flat start
MAX_ITERATIONS = 200
TOLERANCE = 1e-10
MAX_NATS = 50.0  # |r| cap (8,700 Elo): without a prior, an unbeaten player's rating runs off to infinity
RIDGE = 1e-9  # added to the information matrix so a player with no information cannot make it singular


def z_value(confidence: float) -> float:
    """The two-sided normal quantile of ``confidence`` (0.95 -> 1.96)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


@dataclass(frozen=True)
class PlayerRating:
    """One player's fitted rating: Elo with its interval, games played and points scored."""

    name: str
    elo: float
    low: float
    high: float
    games: float
    points: float

    @property
    def score(self) -> float:
        """Points per game (nan without games)."""
        return self.points / self.games if self.games else math.nan


@dataclass(frozen=True)
class Ratings:
    """The fit: one ``PlayerRating`` per player (sorted by name), the anchor and the settings."""

    players: tuple[PlayerRating, ...]
    anchor: str
    anchor_elo: float
    confidence: float
    prior_draws: float

    def __getitem__(self, name: str) -> PlayerRating:
        for p in self.players:
            if p.name == name:
                return p
        raise KeyError(name)

    def __contains__(self, name: str) -> bool:
        return any(p.name == name for p in self.players)

    def elo(self, name: str) -> float:
        return self[name].elo


def tally(results: Iterable[tuple[str, str, float]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(players sorted, W [P, P], N [P, P]) from per-game results."""
    rows = list(results)
    names = sorted({r[0] for r in rows} | {r[1] for r in rows})
    index = {n: i for i, n in enumerate(names)}
    W = np.zeros((len(names), len(names)))
    N = np.zeros_like(W)
    for player, opponent, score in rows:
        if player == opponent:
            raise ValueError(f"a game of {player!r} against itself cannot be rated")
        if score not in (0, 0.5, 1):
            raise ValueError(f"score {score!r} of {player!r} vs {opponent!r} must be 1, 0.5 or 0")
        i, j = index[player], index[opponent]
        W[i, j] += score
        W[j, i] += 1.0 - score
        N[i, j] += 1.0
        N[j, i] += 1.0
    return names, W, N


def _connected(N: np.ndarray, start: int) -> np.ndarray:
    """bool [P]: players joined to ``start`` by a chain of games."""
    seen = np.zeros(len(N), bool)
    seen[start] = True
    frontier = [start]
    while frontier:
        i = frontier.pop()
        for j in np.nonzero((N[i] > 0) & ~seen)[0]:
            seen[j] = True
            frontier.append(int(j))
    return seen


def _newton(W: np.ndarray, N: np.ndarray, anchor: int) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood r [P] (r[anchor] = 0) and the covariance [P-1, P-1] of the others."""
    n = len(W)
    free = np.array([i for i in range(n) if i != anchor], dtype=np.int64)
    r = np.zeros(n)
    for _ in range(MAX_ITERATIONS):
        p = 1.0 / (1.0 + np.exp(-(r[:, None] - r[None, :])))  # p[i, j] = P(i beats j)
        grad = (W - N * p).sum(axis=1)
        info = N * p * (1.0 - p)  # Fisher information of each pair
        hess = np.diag(info.sum(axis=1) + RIDGE) - info  # = -d2L/dr2
        step = np.clip(np.linalg.solve(hess[np.ix_(free, free)], grad[free]), -MAX_STEP, MAX_STEP)
        before = r[free].copy()
        r[free] = np.clip(r[free] + step, -MAX_NATS, MAX_NATS)
        if np.abs(r[free] - before).max(initial=0.0) < TOLERANCE:
            break
    p = 1.0 / (1.0 + np.exp(-(r[:, None] - r[None, :])))
    info = N * p * (1.0 - p)
    hess = np.diag(info.sum(axis=1) + RIDGE) - info
    return r, np.linalg.inv(hess[np.ix_(free, free)])


def fit_ratings(
    results: Iterable[tuple[str, str, float]],
    *,
    anchor: str | None = None,
    anchor_elo: float = 0.0,
    prior_draws: float = 1.0,
    confidence: float = 0.95,
) -> Ratings:
    """Elo ratings of every player in ``results`` (``(player, opponent, score)`` per game).

    ``anchor`` (default: the first name in sorted order) is held at ``anchor_elo``; players
    with no chain of games to it get NaN. ``prior_draws`` virtual draws are added to every
    pair that met (0: plain maximum likelihood, infinite for a player who never lost or
    never won). Intervals are ``confidence`` two-sided, from the Fisher information.
    """
    if prior_draws < 0:
        raise ValueError(f"prior_draws must be >= 0, got {prior_draws}")
    z = z_value(confidence)
    names, W, N = tally(results)
    if not names:
        raise ValueError("no results to rate")
    anchor = names[0] if anchor is None else anchor
    if anchor not in names:
        raise ValueError(f"anchor {anchor!r} has played no game (players: {', '.join(names)})")
    a = names.index(anchor)
    met = N > 0
    Wp, Np = W + met * prior_draws / 2.0, N + met * prior_draws
    keep = np.nonzero(_connected(N, a))[0]
    sub = np.ix_(keep, keep)
    r_keep, cov = _newton(Wp[sub], Np[sub], int(np.nonzero(keep == a)[0][0]))
    elo = np.full(len(names), math.nan)
    half = np.full(len(names), math.nan)
    elo[keep] = anchor_elo + ELO_PER_NAT * r_keep
    stderr = np.zeros(len(keep))
    stderr[np.arange(len(keep)) != np.nonzero(keep == a)[0][0]] = np.sqrt(np.maximum(np.diag(cov), 0.0))
    half[keep] = z * ELO_PER_NAT * stderr
    players = tuple(
        PlayerRating(name, float(elo[i]), float(elo[i] - half[i]), float(elo[i] + half[i]),
                     float(N[i].sum()), float(W[i].sum()))
        for i, name in enumerate(names)
    )
    return Ratings(players, anchor, anchor_elo, confidence, prior_draws)


# --- one match -----------------------------------------------------------------------------


def elo_difference(score: float) -> float:
    """The Elo gap that makes ``score`` the expected score (+-inf at 1 and 0)."""
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"a score lies in [0, 1], got {score}")
    if score in (0.0, 1.0):
        return math.copysign(math.inf, score - 0.5)
    return ELO_PER_NAT * math.log(score / (1.0 - score))


def score_interval(wins: float, draws: float, losses: float, confidence: float = 0.95) -> tuple[float, float, float]:
    """(score, low, high): points per game (draws half) and its Wilson interval."""
    n = wins + draws + losses
    if n <= 0:
        raise ValueError("no games: a score needs at least one")
    z = z_value(confidence)
    p = (wins + draws / 2.0) / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return p, max(0.0, centre - half), min(1.0, centre + half)


__all__ = ["ELO_PER_NAT", "PlayerRating", "Ratings", "elo_difference", "fit_ratings", "score_interval", "tally", "z_value"]
