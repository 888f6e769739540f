"""Where the CPU goes: processor time of each service's process tree, by role (Linux /proc).

On a small machine the split between self-play, training and evaluation decides how much
strength an hour buys, so ``make run`` measures it rather than guessing: a role's time is the
user + system time of its processes and of all their descendants (the evaluator's GNU Go
included), live ones from their own counters and finished ones from their parents'
``cutime``/``cstime``. Figures are percent of one core, as ``top`` shows them: two busy
workers on two cores are 200%.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

ROLES = ("self-play", "learner", "evaluator", "broker")


def process_times(proc: str = "/proc") -> tuple[dict[int, int], dict[int, float]]:
    """(parent of each pid, its CPU seconds: utime + stime + cutime + cstime) for every process."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    seconds: dict[int, float] = {}
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat", encoding="ascii", errors="replace") as f:
                text = f.read()
        except OSError:  # it ended while we looked
            continue
        # the command name (field 2) may hold spaces and parentheses: split after its last ')'
        fields = text[text.rindex(")") + 2:].split()
        parents[int(name)] = int(fields[1])
        seconds[int(name)] = sum(int(x) for x in fields[11:15]) / tick
    return parents, seconds


def tree_seconds(root: int, parents: dict[int, int], seconds: dict[int, float]) -> float:
    """CPU seconds of ``root`` and every live descendant (0 when ``root`` is gone)."""
    children: dict[int, list[int]] = defaultdict(list)
    for pid, parent in parents.items():
        children[parent].append(pid)
    total, stack = 0.0, [root] if root in seconds else []
    while stack:
        pid = stack.pop()
        total += seconds[pid]
        stack.extend(children.get(pid, ()))
    return total


class CpuMeter:
    """Percent of one core used by each role since the previous ``sample`` and since the start.

    ``roots()`` returns the current (role, pid) pairs; a restarted service's new process
    starts from zero, and what an ended process used before the last sample is kept.
    """

    def __init__(self, roots: Callable[[], Iterable[tuple[str, int]]], clock: Callable[[], float] = time.monotonic):
        self.roots, self.clock = roots, clock
        self.last: dict[int, float] = {}  # pid -> its tree's seconds at the last sample
        self.used: dict[str, float] = dict.fromkeys(ROLES, 0.0)  # seconds since the start
        self.t0 = self.t_last = clock()
        self.interval: dict[str, float] = dict.fromkeys(ROLES, 0.0)

    def sample(self) -> dict[str, float]:
        """Percent of one core per role over the last interval."""
        parents, seconds = process_times()
        now = self.clock()
        spent: dict[str, float] = dict.fromkeys(ROLES, 0.0)
        current: dict[int, float] = {}
        for role, pid in self.roots():
            total = tree_seconds(pid, parents, seconds)
            if pid not in seconds:
                continue
            current[pid] = total
            spent[role] = spent.get(role, 0.0) + max(0.0, total - self.last.get(pid, 0.0))
        self.last = current
        elapsed = max(now - self.t_last, 1e-9)
        self.t_last = now
        for role, s in spent.items():
            self.used[role] = self.used.get(role, 0.0) + s
        self.interval = {role: 100.0 * s / elapsed for role, s in spent.items()}
        return self.interval

    def overall(self) -> dict[str, float]:
        """Percent of one core per role since the meter started (up to the last sample)."""
        elapsed = max(self.t_last - self.t0, 1e-9)
        return {role: 100.0 * s / elapsed for role, s in self.used.items()}


def split_text(percent: dict[str, float], cores: int | None = None) -> str:
    """'cpu self-play 104% learner 18% evaluator 42% broker 3% of 200%' (roles in ``ROLES`` order)."""
    cores = cores or os.cpu_count() or 1
    parts = [f"{role} {percent[role]:.0f}%" for role in ROLES if role in percent]
    return f"cpu {' '.join(parts)} of {100 * cores}%"
