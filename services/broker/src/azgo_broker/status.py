"""The broker's status: the /status JSON document and the status.txt table made from it.

/status (built by the loop thread, served by the HTTP thread)::

    broker            {id, version, uptime_s, data_dir}
    model             ModelInfo fields, or null
    workers           [{worker_id, host, gpu, role, state, generation, games_total, positions_total,
                        games_per_s, positions_per_s, nn_evals_per_s, outbox, error, last_seen_s}]
                      self-play workers only, sorted by id
    workers_by_state  {Active, Syncing, Error, Offline: count}
    totals            {games, positions, batches, duplicates, rejected, bytes_in, bytes_out, store_bytes}
    rates             {games_per_s, positions_per_s} of the batches stored in the last RATE_WINDOW s
    learner           the last LearnerReport's figures + age_s, or null
    ratings           the evaluator's last EvalReport, or null: {evaluator_id, anchor, games_total,
                      matches_total, best_generation, latest, generations (newest 50), anchors, age_s};
                      each rating {player, generation, elo, low, high, games}

status.txt is the same, as a table for ``watch -n 1 cat data/broker/status.txt``.
"""

from __future__ import annotations

import math

from azgo_core.protocol import generation_id

RATE_WINDOW = 30.0  # seconds of stored batches behind the rates


def finite(value):
    """JSON has no nan/inf: those become null (a learner loss can be nan)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def _ago(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _gen(generation: int | None) -> str:
    return generation_id(generation) if generation is not None and generation >= 0 else "-"


def _learner_line(learner: dict | None) -> str:
    if not learner:
        return "learner: no report yet"
    loss = learner.get("loss_total")
    loss_text = f"{loss:.4f}" if isinstance(loss, float) else "nan"
    waiting = "  (waiting for games)" if learner.get("waiting") else ""
    return (f"learner: step {learner['step']}  loss {loss_text}  {learner['samples_per_s']:.0f} samples/s  "
            f"reported {_ago(learner['age_s'])} ago{waiting}")


def _ratings_line(ratings: dict | None) -> str:
    if not ratings or not ratings.get("latest"):
        return "elo: no evaluation yet"
    r = ratings["latest"]
    return (f"elo: gen {_gen(r['generation'])} {r['elo']:+.0f} ({r['low']:+.0f} .. {r['high']:+.0f}, "
            f"{ratings['anchor']} = 0)  {ratings['games_total']} evaluation games")


def format_table(status: dict) -> str:
    """status.txt: a header with the model, totals and rates, then one row per self-play worker."""
    model = status.get("model")
    totals, rates, states = status["totals"], status["rates"], status["workers_by_state"]
    lines = [
        f"azgo broker {status['broker']['id']}  up {_ago(status['broker']['uptime_s'])}  "
        f"model {_gen(model['generation'] if model else None)}",
        f"games {totals['games']}  positions {totals['positions']}  batches {totals['batches']}  "
        f"duplicates {totals['duplicates']}  rejected {totals['rejected']}  store {totals['store_bytes'] / 1e6:.1f} MB",
        f"rates (last {RATE_WINDOW:.0f} s): {rates['games_per_s']:.2f} games/s  {rates['positions_per_s']:.1f} positions/s",
        "workers: " + "  ".join(f"{state} {n}" for state, n in states.items()),
        _learner_line(status.get("learner")),
        _ratings_line(status.get("ratings")),
        "",
        f"{'worker':<24} {'host':<16} {'state':<8} {'gen':>6} {'games':>8} {'games/s':>8} {'evals/s':>9} "
        f"{'outbox':>6} {'last seen':>10}",
    ]
    for w in status["workers"]:
        lines.append(
            f"{w['worker_id'][:24]:<24} {w['host'][:16]:<16} {w['state']:<8} {_gen(w['generation']):>6} "
            f"{w['games_total']:>8} {w['games_per_s']:>8.2f} {w['nn_evals_per_s']:>9.0f} {w['outbox']:>6} "
            f"{_ago(w['last_seen_s']):>10}"
        )
        if w["state"] == "Error" and w["error"]:
            lines.append(f"    error: {w['error'][:200]}")
    if not status["workers"]:
        lines.append("(no self-play worker has said hello yet)")
    return "\n".join(lines) + "\n"
