"""The figures of ``azgo report``: matplotlib (Agg backend, no display), one PNG per figure.

Each function takes plain rows (dicts as read from the JSON files) and a path, draws one
figure and returns True, or returns False without writing anything when there is nothing
to draw. Times on the x axes are minutes since the first sample.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, never a window
import matplotlib.pyplot as plt  # noqa: E402

DPI = 110
SIZE = (8, 4.5)


def _num(value) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.nan


def _save(fig, path: Path) -> bool:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


def _minutes(rows: list[dict]) -> list[float]:
    t0 = rows[0]["time"]
    return [(r["time"] - t0) / 60.0 for r in rows]


def losses(rows: list[dict], path: Path) -> bool:
    """Policy, value and total loss by learner step."""
    rows = [r for r in rows if isinstance(r.get("step"), int) and r.get("loss_total") is not None]
    if not rows:
        return False
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=SIZE)
    for key, label in (("loss_total", "total"), ("loss_policy", "policy (cross-entropy)"), ("loss_value", "value (MSE)")):
        ax.plot(steps, [_num(r.get(key)) for r in rows], label=label, linewidth=1.4)
    ax.set(xlabel="learner step", ylabel="loss", title="Training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def elo(players: list[dict], anchor: str, path: Path) -> bool:
    """Elo by generation with its interval; anchors (GNU Go, random) as horizontal bands."""
    gens = sorted((p for p in players if p.get("generation") is not None and p.get("elo") is not None),
                  key=lambda p: p["generation"])
    if not gens:
        return False
    fig, ax = plt.subplots(figsize=SIZE)
    x = [p["generation"] for p in gens]
    y = [p["elo"] for p in gens]
    below = [p["elo"] - p["low"] for p in gens]
    above = [p["high"] - p["elo"] for p in gens]
    ax.errorbar(x, y, yerr=[below, above], fmt="o-", capsize=3, linewidth=1.4, markersize=4, label="generation")
    for i, p in enumerate(q for q in players if q.get("generation") is None and q.get("elo") is not None):
        colour = f"C{i + 1}"
        ax.axhline(p["elo"], color=colour, linestyle="--", linewidth=1, label=f"{p['player']} ({p['elo']:+.0f})")
        if p["high"] > p["low"]:
            ax.axhspan(p["low"], p["high"], color=colour, alpha=0.12)
    ax.set(xlabel="model generation", ylabel=f"Elo ({anchor} = 0)", title="Elo by generation (95% intervals)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def throughput(status: list[dict], learner: list[dict], path: Path) -> bool:
    """Self-play games/s and NN evals/s (summed over workers) over time, and the learner's samples/s."""
    status = [r for r in status if isinstance(r.get("time"), (int, float))]
    if len(status) < 2:
        return False
    t = _minutes(status)
    fig, axes = plt.subplots(3 if learner else 2, 1, figsize=(8, 7), sharex=True)
    axes[0].plot(t, [_num(r.get("games_per_s")) for r in status], color="C0")
    axes[0].set(ylabel="games/s", title="Self-play and training throughput")
    axes[1].plot(t, [_num(r.get("nn_evals_per_s")) for r in status], color="C1")
    axes[1].set(ylabel="NN evals/s")
    if learner:
        t0 = status[0]["time"]
        axes[2].plot([(r["time"] - t0) / 60.0 for r in learner], [_num(r.get("samples_per_s")) for r in learner], color="C2")
        axes[2].set(ylabel="samples/s (learner)")
    for ax in axes:
        ax.grid(alpha=0.3)
        top = max((y for line in ax.get_lines() for y in line.get_ydata() if math.isfinite(y)), default=1.0)
        ax.set_ylim(0, 1.15 * top or 1.0)
    axes[-1].set(xlabel="minutes")
    return _save(fig, path)


def workers(status: list[dict], path: Path) -> bool:
    """Self-play workers over time: connected and Active."""
    status = [r for r in status if isinstance(r.get("time"), (int, float))]
    if len(status) < 2:
        return False
    t = _minutes(status)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.step(t, [r.get("workers", 0) for r in status], where="post", label="connected")
    ax.step(t, [r.get("workers_active", 0) for r in status], where="post", label="Active", linestyle="--")
    ax.set(xlabel="minutes", ylabel="workers", title="Self-play workers")
    ax.set_ylim(bottom=0)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def health(rows: list[dict], path: Path) -> bool:
    """Training health of the learner's recent games over time: black's win share, the
    resigned share, white-passes-first share (left axis) and the mean game length (right)."""
    rows = [r for r in rows if isinstance(r.get("time"), (int, float)) and isinstance(r.get("health"), dict)
            and r["health"].get("games")]
    if not rows:
        return False
    t = _minutes(rows)
    fig, ax = plt.subplots(figsize=SIZE)
    for key, label in (("black_win_share", "black wins"), ("resigned_share", "resigned"),
                       ("white_passes_first_share", "white passes first")):
        ax.plot(t, [_num(r["health"].get(key)) for r in rows], label=label)
    ax.axhspan(0.9, 1.0, color="red", alpha=0.08)
    ax.axhspan(0.0, 0.1, color="red", alpha=0.08)
    ax.set_ylim(0, 1)
    ax.set_xlabel("minutes")
    ax.set_ylabel("share of the recent games")
    right = ax.twinx()
    right.plot(t, [_num(r["health"].get("mean_moves")) for r in rows], color="black", linestyle=":", label="moves")
    right.set_ylabel("mean game length (moves, dotted)")
    ax.legend(loc="center left", fontsize="small", framealpha=0.9)
    ax.set_title("Training health (one colour above 90% or below 10%: collapse)")
    return _save(fig, path)
