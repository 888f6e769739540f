"""The learner's figures: averaged over each report interval, then sent and logged three ways.

One report (``Figures``) goes to the broker as a ``LearnerReport``, as one JSON line in
``<data_dir>/metrics.jsonl`` and, when enabled, to TensorBoard under namespaced tags
(cleanrl style): ``losses/policy``, ``losses/value``, ``losses/total``, ``losses/policy_kl``,
``losses/ownership``, ``losses/score``, ``losses/opponent_policy`` (KataGo's auxiliary heads),
``charts/samples_per_s``, ``charts/generation``, ``charts/window_positions``,
``charts/samples_per_position``, ``charts/learning_rate``, ``charts/positions_written_off``,
and the training health of the recent self-play games (``azgo_core.health``) under
``health/black_win_share``, ``health/resigned_share``, ``health/mean_moves``,
``health/white_passes_first_share``, ``health/first_pass_move``, ``health/false_resignation_rate``;
the JSON line and the report also carry the health of each of the newest generations and the
health warnings.

Losses are the means of ``train_step``'s ``policy_loss``, ``value_loss`` and ``total_loss``
over the steps since the previous report (the previous values when there were none; NaN
before the first step, written as null in the JSON line).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from azgo_core import protocol as P
from azgo_core.health import HealthWindow

# train_step metric -> report field
AVERAGED = {"policy_loss": "loss_policy", "value_loss": "loss_value", "total_loss": "loss_total",
            "policy_kl": "policy_kl", "lr": "lr", "ownership_loss": "loss_ownership", "score_loss": "loss_score",
            "opponent_policy_loss": "loss_opponent_policy"}


@dataclass
class Figures:
    """One report: the ``LearnerReport`` fields, then extras for the logs."""

    step: int
    generation: int
    samples_trained: int
    positions_seen: int
    samples_per_s: float
    loss_policy: float
    loss_value: float
    loss_total: float
    waiting: bool
    policy_kl: float
    lr: float
    window_positions: int
    samples_per_position: float
    positions_written_off: float
    time: float
    health: dict | None = None
    """``P.SelfPlayHealth`` of the recent games, as a dict (None before any game)."""
    health_by_generation: list[dict] = field(default_factory=list)
    health_warnings: list[str] = field(default_factory=list)
    loss_ownership: float = math.nan
    """KataGo's auxiliary losses (``train_step``); NaN for a net without auxiliary heads."""
    loss_score: float = math.nan
    loss_opponent_policy: float = math.nan

    def message(self) -> P.LearnerReport:
        fields = P.LearnerReport.model_fields
        return P.LearnerReport(**{k: v for k, v in asdict(self).items() if k in fields})


def health_fields(health: HealthWindow | None) -> dict:
    """The health part of a report: the window, the newest generations, the warnings."""
    if health is None or not health.recent:
        return {}
    by_gen = list(health.generations().items())[-P.MAX_HEALTH_GENERATIONS:]
    window = health.window()
    return {"health": window.as_dict(),
            "health_by_generation": [{"generation": g, **h.as_dict()} for g, h in by_gen],
            "health_warnings": health.warnings(window)}


class Reporter:
    """Averages step metrics between reports and writes each report to the logs."""

    def __init__(self, data_dir: str | Path, tensorboard: bool):
        self.path = Path(data_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = None
        if tensorboard:
            from tensorboardX import SummaryWriter  # imported only when used: it starts a writer thread

            self.writer = SummaryWriter(str(Path(data_dir) / "tensorboard"))
        self._sums = dict.fromkeys(AVERAGED, 0.0)
        self._steps = 0
        self._last = dict.fromkeys(AVERAGED.values(), math.nan)
        self._since = time.monotonic()
        self._samples_at_last = 0

    def add_step(self, metrics: dict[str, float]) -> None:
        """Count one ``train_step``'s metrics towards the next report."""
        for key in AVERAGED:
            self._sums[key] += metrics.get(key, math.nan)  # the auxiliary losses only with auxiliary heads
        self._steps += 1

    def figures(self, *, step: int, generation: int, samples_trained: int, positions_seen: int, waiting: bool,
                window_positions: int, samples_per_position: float, positions_written_off: float,
                health: HealthWindow | None = None) -> Figures:
        """Close the current interval: its means and rates, then start the next one."""
        now = time.monotonic()
        if self._steps:
            self._last = {AVERAGED[k]: self._sums[k] / self._steps for k in AVERAGED}
        elapsed = max(now - self._since, 1e-9)
        rate = max(samples_trained - self._samples_at_last, 0) / elapsed
        self._sums, self._steps = dict.fromkeys(AVERAGED, 0.0), 0
        self._since, self._samples_at_last = now, samples_trained
        return Figures(step=step, generation=generation, samples_trained=samples_trained, positions_seen=positions_seen,
                       samples_per_s=rate, waiting=waiting, window_positions=window_positions,
                       samples_per_position=samples_per_position, positions_written_off=positions_written_off,
                       time=time.time(), **self._last, **health_fields(health))

    def write(self, figures: Figures) -> None:
        """Append the JSON line and the TensorBoard scalars."""
        row = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(figures).items()}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self.writer is None:
            return
        scalars = {
            "losses/policy": figures.loss_policy, "losses/value": figures.loss_value, "losses/total": figures.loss_total,
            "losses/policy_kl": figures.policy_kl, "charts/samples_per_s": figures.samples_per_s,
            "charts/generation": figures.generation, "charts/window_positions": figures.window_positions,
            "charts/samples_per_position": figures.samples_per_position, "charts/learning_rate": figures.lr,
            "charts/positions_written_off": figures.positions_written_off,
            "losses/ownership": figures.loss_ownership, "losses/score": figures.loss_score,
            "losses/opponent_policy": figures.loss_opponent_policy,
        }
        for key, value in (figures.health or {}).items():
            if key != "games" and value is not None:
                scalars[f"health/{key}"] = value
        for tag, value in scalars.items():
            if math.isfinite(value):
                self.writer.add_scalar(tag, value, figures.step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
