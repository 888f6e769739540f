"""The evaluator's files in ``evaluation.data_dir`` (``data/evaluator/``): results, ratings, SGF, status history.

==================  =================================================================================
results.jsonl       one line per evaluation game: time, subject (the generation evaluated, '000012'),
                    opponent ('000011', 'random', 'gnugo-l1'), black, white (SGF names), result
                    ('B+3.5', 'W+R'), subject_points (1, 0.5, 0), reason, moves, size, komi, visits,
                    match (id), sgf (path under the data dir)
evaluations.jsonl   one line per finished evaluation: generation, time, opponents, games,
                    gate (null, or {opponent, score, accepted}), best_generation
ratings.json        the latest fit (rewritten atomically): anchor, confidence, prior_draws, games_total,
                    matches_total, best_generation, evaluated, players [{player, generation, elo,
                    low, high, games, score}] (elo null for a player with no chain of games to the anchor)
status.jsonl        the broker's /status every ``evaluation.status_interval`` s: time, games, positions,
                    games_per_s, positions_per_s, nn_evals_per_s, workers, workers_active,
                    generation, learner_step, loss_total (for ``azgo report``)
sgf/                <subject>-vs-<opponent>-<n>.sgf: every evaluation game, n counting that pairing
==================  =================================================================================

Lines are appended whole and flushed; a line torn by a crash is skipped with a warning, so
a restart resumes from what was written.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

from azgo_core.files import atomic_write
from azgo_core.rating import Ratings

log = logging.getLogger("azgo.evaluator.results")


def read_jsonl(path: Path) -> list[dict]:
    """Every whole JSON line of ``path`` (none if it is missing); unreadable lines are skipped and logged."""
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return rows
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s line %d is not JSON (a torn write?): skipped", path, number)
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def append_jsonl(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, allow_nan=False) + "\n")
        f.flush()


def _finite(x: float) -> float | None:
    return round(x, 2) if math.isfinite(x) else None


class ResultStore:
    """The evaluator's data directory."""

    def __init__(self, data_dir: str | Path):
        self.dir = Path(data_dir)
        (self.dir / "sgf").mkdir(parents=True, exist_ok=True)
        self.results_path = self.dir / "results.jsonl"
        self.evaluations_path = self.dir / "evaluations.jsonl"
        self.ratings_path = self.dir / "ratings.json"
        self.status_path = self.dir / "status.jsonl"
        self._games = read_jsonl(self.results_path)
        self._evaluations = read_jsonl(self.evaluations_path)

    # --- games ----------------------------------------------------------------------------
    def games(self) -> list[dict]:
        return list(self._games)

    def pair_games(self, subject: str, opponent: str) -> int:
        return sum(1 for g in self._games if g.get("subject") == subject and g.get("opponent") == opponent)

    def write_sgf(self, subject: str, opponent: str, text: str) -> str:
        """Store one game's SGF as sgf/<subject>-vs-<opponent>-<n>.sgf; returns that relative path."""
        n = self.pair_games(subject, opponent) + 1
        path = self.dir / "sgf" / f"{subject}-vs-{opponent}-{n:03d}.sgf"
        while path.exists():  # a game written before a crash cut off its result line
            n += 1
            path = self.dir / "sgf" / f"{subject}-vs-{opponent}-{n:03d}.sgf"
        path.write_text(text, encoding="utf-8")
        return str(path.relative_to(self.dir))

    def add_game(self, row: dict) -> None:
        append_jsonl(self.results_path, row)
        self._games.append(row)

    def pairwise(self) -> list[tuple[str, str, float]]:
        """(subject, opponent, subject's points) of every game, for ``rating.fit_ratings``."""
        out = []
        for g in self._games:
            try:
                out.append((str(g["subject"]), str(g["opponent"]), float(g["subject_points"])))
            except (KeyError, TypeError, ValueError):
                log.warning("results.jsonl: a game without subject/opponent/subject_points is ignored: %r", g)
        return out

    def matches_total(self) -> int:
        return len({g.get("match") for g in self._games})

    # --- evaluations ----------------------------------------------------------------------
    def evaluations(self) -> list[dict]:
        return list(self._evaluations)

    def evaluated(self) -> list[int]:
        """Generations whose evaluation finished, ascending."""
        return sorted({int(e["generation"]) for e in self._evaluations if "generation" in e})

    def best_generation(self) -> int:
        """The newest generation a finished evaluation recorded as best (-1: none)."""
        return int(self._evaluations[-1].get("best_generation", -1)) if self._evaluations else -1

    def add_evaluation(self, row: dict) -> None:
        append_jsonl(self.evaluations_path, row)
        self._evaluations.append(row)

    # --- ratings and status ----------------------------------------------------------------
    def write_ratings(self, ratings: Ratings, generations: dict[str, int], best_generation: int) -> dict:
        """Rewrite ratings.json from a fit (``generations``: rating id -> generation); returns the document."""
        players = []
        for p in ratings.players:
            players.append({"player": p.name, "generation": generations.get(p.name), "elo": _finite(p.elo),
                            "low": _finite(p.low), "high": _finite(p.high), "games": int(p.games),
                            "score": _finite(p.score)})
        doc = {"time": time.time(), "anchor": ratings.anchor, "confidence": ratings.confidence,
               "prior_draws": ratings.prior_draws, "games_total": len(self._games), "matches_total": self.matches_total(),
               "best_generation": best_generation, "evaluated": self.evaluated(), "players": players}
        atomic_write(self.ratings_path, (json.dumps(doc, indent=1, allow_nan=False) + "\n").encode())
        return doc

    def add_status(self, row: dict) -> None:
        append_jsonl(self.status_path, row)
