"""Who a new generation plays, what the ratings are anchored on, and the gate (pure functions).

Names in results and ratings: a generation is its id (``000012``), the anchors are
``random`` (Elo 0 by convention) and ``gnugo-l<level>``. The k-th generation evaluated
(k = 0, 1, ...; generations published while the evaluator was busy are skipped, so k is not
the generation number) plays, in this order:

1. with ``evaluation.gating``, the best generation so far, ``gate_games`` games (the gate);
2. the ``opponents`` most recently evaluated generations, ``games_per_match`` games each;
3. the random player when ``k % random_every == 0`` and GNU Go at each of ``gnugo_levels``
   when ``k % gnugo_every == 0`` (so the first generation evaluated plays them all, tying the
   scale to its anchors).
"""

from __future__ import annotations

from dataclasses import dataclass

from azgo_core.config import Evaluation
from azgo_core.protocol import generation_id

RANDOM = "random"


def gnugo_name(level: int) -> str:
    return f"gnugo-l{level}"


@dataclass(frozen=True)
class Opponent:
    name: str
    """Rating id: '000011', 'random', 'gnugo-l1'."""
    games: int
    generation: int | None = None
    """The opponent's generation; None for an anchor."""
    gate: bool = False
    """This match decides whether the new generation is accepted."""
    level: int | None = None
    """GNU Go's level when the opponent is GNU Go."""


def plan(evaluated: list[int], cfg: Evaluation, *, best: int = -1, gnugo: bool = True) -> list[Opponent]:
    """The matches of the next generation, given the generations evaluated before it (ascending)."""
    k = len(evaluated)
    out: list[Opponent] = []
    if cfg.gating and best >= 0:
        out.append(Opponent(generation_id(best), cfg.gate_games, best, gate=True))
    for g in reversed(evaluated[-cfg.opponents:] if cfg.opponents else []):
        if not any(o.generation == g for o in out):
            out.append(Opponent(generation_id(g), cfg.games_per_match, g))
    if cfg.random_every and k % cfg.random_every == 0:
        out.append(Opponent(RANDOM, cfg.games_per_match))
    if gnugo and cfg.gnugo_every and k % cfg.gnugo_every == 0:
        out.extend(Opponent(gnugo_name(level), cfg.games_per_match, level=level) for level in dict.fromkeys(cfg.gnugo_levels))
    return out


def anchor_of(players: set[str], evaluated: list[int]) -> str:
    """The player held at Elo 0: the random player once it has played, else the first generation evaluated."""
    if RANDOM in players:
        return RANDOM
    for g in evaluated:
        if generation_id(g) in players:
            return generation_id(g)
    return min(players)


def accepted(score: float, cfg: Evaluation) -> bool:
    """The seed's arena rule: a new generation replaces the best at ``gate_win_rate`` or more."""
    return score >= cfg.gate_win_rate
