"""The sample-ratio governor: how much the learner may train on the games it has been given.

AlphaZero-style training is bounded by the replay ratio, the number of times each new
position is used as a training sample (KataGo: "samples per new data row"). Counters:

    positions  P   new policy-target positions counted so far (less any written off)
    samples    S   positions trained on so far (steps x batch size)

Two bounds, ``max_per_position`` (r_max) and ``min_per_position`` (r_min):

* the learner trains only while ``S <= r_max * P``; above it, it waits for new games, so a
  slow self-play fleet cannot make it overfit the window;
* when training lags so far that ``P > S / r_min + slack`` (self-play outpaces the
  learner), the surplus positions are written off (P drops to ``S / r_min + slack``), so
  the learner never owes a backlog it cannot catch up with. ``slack`` (positions) is the
  lag allowed before anything is written off; the learner uses its window size: games
  arrive before the first step, and only a position that has left the window before it
  could be trained on ``r_min`` times is truly lost to training.

The class is pure bookkeeping; the learner logs what it returns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class SampleRatio:
    """Counters and bounds of the replay ratio S / P (see the module docstring)."""

    max_per_position: float
    """r_max: wait for games while S > r_max * P."""
    min_per_position: float
    """r_min: write positions off while P > S / r_min + slack (0: never)."""
    slack: float = 0.0
    """Positions P may exceed S / r_min by before any is written off."""
    positions: float = 0.0
    """P: new positions counted, after write-offs."""
    samples: int = 0
    """S: samples trained."""
    seen: int = 0
    """New positions ever added (never written off; for reports)."""
    written_off: float = 0.0
    """Positions written off so far."""

    def __post_init__(self) -> None:
        if not self.max_per_position > 0:
            raise ValueError(f"max_per_position must be > 0, got {self.max_per_position!r}")
        if not 0 <= self.min_per_position <= self.max_per_position:
            raise ValueError(f"min_per_position must be in [0, max_per_position], got {self.min_per_position!r}")
        if self.slack < 0:
            raise ValueError(f"slack must be >= 0, got {self.slack!r}")

    def add_positions(self, n: int) -> float:
        """Count ``n`` new positions; returns how many positions were written off (0.0: none)."""
        if n < 0:
            raise ValueError(f"cannot add {n} positions")
        self.positions += n
        self.seen += n
        return self._write_off()

    def trained(self, samples: int) -> None:
        """Count ``samples`` positions trained on (one step: the batch size)."""
        self.samples += samples

    def may_train(self) -> bool:
        """True while S <= r_max * P: the learner has not used up the data it was given."""
        return self.samples <= self.max_per_position * self.positions

    @property
    def ratio(self) -> float:
        """S / P, samples per counted position (0.0 before any position)."""
        return self.samples / self.positions if self.positions else 0.0

    def _write_off(self) -> float:
        if self.min_per_position <= 0:
            return 0.0
        keep = self.samples / self.min_per_position + self.slack
        if self.positions <= keep:
            return 0.0
        surplus = self.positions - keep
        self.positions = keep
        self.written_off += surplus
        return surplus

    # --- checkpoint ------------------------------------------------------------------------
    def counters(self) -> dict[str, float]:
        """The counters (not the bounds, which come from the config) as plain data."""
        data = asdict(self)
        return {k: data[k] for k in ("positions", "samples", "seen", "written_off")}

    def restore(self, counters: dict[str, float]) -> None:
        """Load counters saved by ``counters``; raises ValueError naming a missing or bad one."""
        try:
            positions, samples = float(counters["positions"]), int(counters["samples"])
            seen, written_off = int(counters["seen"]), float(counters["written_off"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"sample-ratio counters {counters!r} are incomplete or not numbers ({exc!r})") from None
        if min(positions, samples, seen, written_off) < 0:
            raise ValueError(f"sample-ratio counters must be >= 0, got {counters!r}")
        self.positions, self.samples, self.seen, self.written_off = positions, samples, seen, written_off
