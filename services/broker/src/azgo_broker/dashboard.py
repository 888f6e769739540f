"""The web dashboard's data: what the loop thread records, and the JSON the HTTP thread serves.

The page at ``/`` (``web/index.html``) polls ``/status`` and these read-only endpoints::

    /api/series?points=300   the run over time, downsampled server-side to at most ``points`` rows:
                             {columns: [t, games, positions, games_per_s, positions_per_s, bytes_in_per_s,
                              sync_s, learner_step, loss_policy, loss_value, loss_total,
                              samples_per_position, black_win_share, resigned_share, mean_moves,
                              workers_active], rows: [[...], ...], recorded, every_s}
    /api/elo?points=200      {anchor, anchors: [Rating], generations: [Rating] (downsampled, the
                              newest always kept), total}
    /api/models?limit=100    {current, total, generations: [{generation, id, sha256, size, published, url}]}
                             newest first; a file downloads from /models/<id>.safetensors
    /api/games?limit=20      the newest self-play games in the store, then the newest evaluation
                              games: [{kind: selfplay, seq, index, worker_id, generation, moves,
                              result, received} | {kind: evaluation, sgf, black, white, moves,
                              result, received}]
    /api/game?seq=S&index=I  a self-play game for the board: {board_size, komi, moves: [flat],
                              captures: [[flat]] per move, final: [0 empty/1 black/2 white] * N*N, ...}
    /api/game?sgf=NAME       an evaluation game, the same way
    /api/game.sgf?seq=S&index=I or ?sgf=NAME   the game as SGF (FF[4])

Threads: the loop thread owns ``Dashboard`` and calls ``record`` between rounds; every
``RECORD_SECONDS`` it appends one row and publishes an immutable ``View`` (tuples, frozen
entries) that the HTTP thread reads without a lock. Reading a game opens the segment file
itself (``store.read_committed``): committed records never change, so the loop's descriptors
and index are never touched, and at most ``RECENT_BATCHES`` of the newest batches can be read.

Evaluation games are read from the evaluator's data dir (``evaluation.data_dir``: the same
folder under ``make run``, its volume mounted read-only into the broker in compose), from the
last ``EVAL_TAIL_BYTES`` of results.jsonl and its sgf/ files; without that dir there are none.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass, field

from azgo_core import sgf
from azgo_core.position import Position
from azgo_core.protocol import ID_CHARS, Rating, generation_id
from azgo_core.records import decode_batch

from .store import Entry, read_committed

RECORD_SECONDS = 2.0  # one row of the series every this many seconds (doubles when the history is compacted)
MAX_ROWS = 4096  # rows kept: at this size every other row is dropped and the interval doubles
RECENT_BATCHES = 64  # the newest batches whose games the page can list, replay and download (one read each)
MAX_POINTS = 2000  # the most points any endpoint returns, whatever ?points says
EVAL_TAIL_BYTES = 64 << 10  # the end of the evaluator's results.jsonl read for its newest games
MAX_SGF_BYTES = 1 << 20  # an evaluation game's SGF file larger than this is not read
SGF_NAME = re.compile(rf"^[{ID_CHARS}]{{1,200}}\.sgf$")
COLUMNS = ("t", "games", "positions", "games_per_s", "positions_per_s", "bytes_in_per_s", "sync_s", "learner_step",
           "loss_policy", "loss_value", "loss_total", "samples_per_position", "black_win_share", "resigned_share",
           "mean_moves", "workers_active")


class NotFound(LookupError):
    """A request for something the dashboard does not have (HTTP 404, with this message)."""


def downsample(items: list | tuple, points: int) -> list:
    """At most ``points`` items, evenly spaced, the first and the last always kept."""
    n = len(items)
    points = max(2, min(points, MAX_POINTS))
    if n <= points:
        return list(items)
    return [items[round(i * (n - 1) / (points - 1))] for i in range(points)]


@dataclass(frozen=True)
class View:
    """What the HTTP thread reads: an immutable picture of the dashboard's data."""

    rows: tuple = ()
    every_s: float = RECORD_SECONDS
    anchor: str = "random"
    anchors: tuple = ()
    ratings: tuple = ()
    """Rating dicts of every generation ever reported, by generation."""
    models: tuple = ()
    """(generation, sha256, size, published unix time), oldest first."""
    recent: tuple[Entry, ...] = ()
    store_dir: str = ""
    models_dir: str = ""
    evaluation_dir: str = ""


@dataclass
class Dashboard:
    """The loop thread's side: history rows, every generation's rating, the published view."""

    store_dir: str
    models_dir: str
    evaluation_dir: str = ""
    rows: list[tuple] = field(default_factory=list)
    every_s: float = RECORD_SECONDS
    ratings: dict[int, dict] = field(default_factory=dict)
    anchors: tuple = ()
    anchor: str = "random"
    view: View = field(default_factory=View)
    _next: float = 0.0
    _last: tuple | None = None  # (time, bytes_in, sync sum, sync count) of the previous row
    _models_key: int = -2

    def rate(self, report_anchor: str, ratings: list[Rating]) -> None:
        """Merge an evaluator report: a generation keeps its last reported rating (reports hold the newest 256)."""
        self.anchor = report_anchor
        self.anchors = tuple(r.model_dump() for r in ratings if r.generation is None)
        for r in ratings:
            if r.generation is not None:
                self.ratings[r.generation] = r.model_dump()
        self._publish(models=None, recent=None)

    def record(self, status: dict, sync: tuple[float, float], recent: list[Entry], models, now: float | None = None):
        """Between rounds: append a row when one is due, and publish a new view. ``models`` is the registry."""
        now = time.time() if now is None else now
        if now < self._next:
            return
        self._next = now + self.every_s
        totals, rates, learner = status["totals"], status["rates"], status.get("learner") or {}
        bytes_rate = sync_s = None
        if self._last is not None:
            t0, b0, s0, c0 = self._last
            bytes_rate = (totals["bytes_in"] - b0) / max(now - t0, 1e-9)
            sync_s = (sync[0] - s0) / (sync[1] - c0) if sync[1] > c0 else None
        self._last = (now, totals["bytes_in"], *sync)
        health = learner.get("health") or {}
        positions_seen = learner.get("positions_seen") or 0
        self.rows.append((
            round(now, 3), totals["games"], totals["positions"], rates["games_per_s"], rates["positions_per_s"],
            bytes_rate, sync_s, learner.get("step"), learner.get("loss_policy"), learner.get("loss_value"),
            learner.get("loss_total"), learner.get("samples_trained", 0) / positions_seen if positions_seen else None,
            health.get("black_win_share"), health.get("resigned_share"), health.get("mean_moves"),
            status["workers_by_state"].get("Active", 0),
        ))
        if len(self.rows) >= MAX_ROWS:  # the whole run stays covered, at half the resolution
            self.rows = self.rows[::2]
            self.every_s *= 2
        self._publish(models=models, recent=recent)

    def _publish(self, models, recent) -> None:
        old = self.view
        model_rows = old.models
        if models is not None and models.current_generation != self._models_key:
            self._models_key = models.current_generation
            model_rows = tuple((g, p.info.sha256, p.info.size, p.published) for g, p in sorted(models.generations.items()))
        self.view = View(
            rows=tuple(self.rows), every_s=self.every_s, anchor=self.anchor, anchors=self.anchors,
            ratings=tuple(self.ratings[g] for g in sorted(self.ratings)), models=model_rows,
            recent=tuple(recent[-RECENT_BATCHES:]) if recent is not None else old.recent,
            store_dir=self.store_dir, models_dir=self.models_dir, evaluation_dir=self.evaluation_dir,
        )


# --- what the HTTP thread serves (pure functions of a View) -------------------------------------
def _clean(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def series(view: View, points: int) -> dict:
    rows = downsample(view.rows, points)
    return {"columns": list(COLUMNS), "rows": [[_clean(v) for v in row] for row in rows],
            "recorded": len(view.rows), "every_s": view.every_s}


def elo(view: View, points: int) -> dict:
    return {"anchor": view.anchor, "anchors": list(view.anchors), "total": len(view.ratings),
            "generations": downsample(view.ratings, points)}


def models(view: View, limit: int) -> dict:
    newest = view.models[::-1][:max(1, min(limit, MAX_POINTS))]
    return {"current": view.models[-1][0] if view.models else None, "total": len(view.models),
            "generations": [{"generation": g, "id": generation_id(g), "sha256": sha, "size": size, "published": at,
                             "url": f"/models/{generation_id(g)}.safetensors"} for g, sha, size, at in newest]}


def model_path(view: View, name: str) -> str:
    """The file of ``/models/<id>.safetensors``, for a published generation only."""
    stem, dot, suffix = name.partition(".")
    if not (dot and suffix == "safetensors" and stem.isdigit() and len(stem) >= 6):
        raise NotFound(f"no model file {name!r}: try /api/models")
    if int(stem) not in {g for g, *_ in view.models}:
        raise NotFound(f"generation {stem} is not published")
    return f"{view.models_dir}/{generation_id(int(stem))}.safetensors"


def _batch(view: View, seq: int):
    entry = next((e for e in view.recent if e.seq == seq), None)
    if entry is None:
        raise NotFound(f"batch {seq} is not among the {RECENT_BATCHES} newest: try /api/games")
    return entry, decode_batch(read_committed(view.store_dir, entry))


def games(view: View, limit: int) -> list[dict]:
    """The newest ``limit`` self-play games (newest first, from the newest batches), then the newest evaluation games."""
    return selfplay_games(view, limit) + evaluation_games(view, limit)


def selfplay_games(view: View, limit: int) -> list[dict]:
    out: list[dict] = []
    for entry in reversed(view.recent):
        if len(out) >= limit:
            break
        _, records = _batch(view, entry.seq)
        for index in reversed(range(len(records))):
            r = records[index]
            out.append({"kind": "selfplay", "seq": entry.seq, "index": index, "worker_id": r.worker_id,
                        "generation": r.model_generation,
                        "moves": r.num_moves, "result": r.result_string(), "received": entry.received})
            if len(out) >= limit:
                break
    return out


def evaluation_games(view: View, limit: int) -> list[dict]:
    """The newest ``limit`` evaluation games in the evaluator's results.jsonl (newest first); none without it."""
    if not view.evaluation_dir:
        return []
    try:
        with open(os.path.join(view.evaluation_dir, "results.jsonl"), "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - EVAL_TAIL_BYTES))
            tail = f.read(EVAL_TAIL_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for line in reversed(tail.splitlines()[1:] if size > EVAL_TAIL_BYTES else tail.splitlines()):
        try:
            row = json.loads(line)
            name = os.path.basename(str(row["sgf"]))
        except (ValueError, KeyError, TypeError):  # a line cut by the tail or a crash
            continue
        if SGF_NAME.match(name):
            out.append({"kind": "evaluation", "sgf": name, "black": str(row.get("black")), "white": str(row.get("white")),
                        "moves": row.get("moves"), "result": str(row.get("result")), "received": row.get("time")})
        if len(out) >= limit:
            break
    return out


def _evaluation_sgf(view: View, name: str) -> str:
    if not (view.evaluation_dir and SGF_NAME.match(name)):
        raise NotFound(f"no evaluation game {name[:80]!r}: try /api/games")
    path = os.path.join(view.evaluation_dir, "sgf", name)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SGF_BYTES + 1)
    except OSError:
        raise NotFound(f"no evaluation game {name!r}") from None
    if len(data) > MAX_SGF_BYTES:
        raise ValueError(f"evaluation game {name!r} is over {MAX_SGF_BYTES} bytes")
    return data.decode("utf-8", errors="replace")


def _replay(size: int, komi: float, moves: list[int]) -> tuple[list[list[int]], list[int]]:
    """(points captured by each move, final stones) by azgo_core's rules."""
    pos = Position(size, komi, move_cap=max(len(moves), 1))
    captures = []
    for move in moves:
        before = pos.stones()
        pos.play(move)
        after = pos.stones()
        captures.append([p for p in range(len(before)) if before[p] and not after[p]])
    return captures, pos.stones().tolist()


def evaluation_game(view: View, name: str) -> dict:
    """An evaluation game for the page's board (its SGF read by ``sgf.from_sgf_moves``)."""
    text = _evaluation_sgf(view, name)
    size, komi, moves, result = sgf.from_sgf_moves(text)
    captures, final = _replay(size, komi, moves)
    players = dict(re.findall(r"\b(PB|PW)\[([^\]]{0,80})\]", text))
    return {"kind": "evaluation", "sgf": name, "board_size": size, "komi": komi, "result": result,
            "black": players.get("PB", "?"), "white": players.get("PW", "?"), "moves": moves, "captures": captures,
            "final": final, "sgf_url": f"/api/game.sgf?sgf={name}"}


def evaluation_sgf(view: View, name: str) -> str:
    return _evaluation_sgf(view, name)


def _record(view: View, seq: int, index: int):
    _, records = _batch(view, seq)
    if not 0 <= index < len(records):
        raise NotFound(f"batch {seq} has {len(records)} games, no game {index}")
    return records[index]


def game(view: View, seq: int, index: int) -> dict:
    """A game for the page's board: its moves and, per move, the points it captured (the rules are azgo_core's)."""
    r = _record(view, seq, index)
    captures, final = _replay(r.board_size, r.komi, r.moves.tolist())
    return {"kind": "selfplay", "seq": seq, "index": index, "board_size": r.board_size, "komi": r.komi,
            "result": r.result_string(), "generation": r.model_generation, "worker_id": r.worker_id,
            "moves": r.moves.tolist(), "captures": captures, "final": final,
            "sgf_url": f"/api/game.sgf?seq={seq}&index={index}"}


def game_sgf(view: View, seq: int, index: int) -> str:
    return sgf.to_sgf(_record(view, seq, index))
