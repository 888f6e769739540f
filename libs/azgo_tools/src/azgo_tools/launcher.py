"""`azgo run` / `make run`: the whole pipeline on this machine, as local processes.

Starts a broker, waits for its /healthz, then a learner and ``run.selfplay_workers`` self-play
workers (ids ``local-1`` ...), all reading the same config file, data under the config's data
dirs (``./data`` by default) and logs in ``data/logs/``. Every ``run.progress_interval`` seconds
it prints one progress line built from the broker's /status and /metrics:

    [00:04:10] games 412 played (1.10/s, 3,960/h) 400 stored  positions 36,120 stored (131/s)
               gen 000003 (1m02s ago)  step 150 loss 3.412  health B 52% resigned 8% 71 moves W-pass-first 48% @ 63
               workers active 2/2  sync 0.21s  net in 4.1 kB/s
               cpu self-play 104% learner 18% evaluator 42% broker 3% of 200%
               WARNING: black won 97% of the last 1000 self-play games: one colour has taken over

``health`` is the learner's training health of its recent games (``azgo_core.health``): black's
win share, the resigned share, the mean game length, and how often white passes first and at
which move on average; a collapse adds a WARNING line. ``cpu`` is where the machine's time went
over the interval, by role (``azgo_tools.cpu``: each service's process tree, GNU Go under
the evaluator included), in percent of one core; the log's last line gives it for the run.

A child that dies is restarted (with back-off) and reported. Ctrl-C (or SIGTERM) stops the
workers first (they put finished games in their outbox and deliver it), then the learner (it
checkpoints), then the broker: nothing acknowledged is lost and a second `make run` resumes.

The children run in their own sessions so a terminal's Ctrl-C reaches only this process, which
then stops them in that order. ``data/run.pid`` guards against two runs on one data dir.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from azgo_core.config import ConfigError, Settings, load_settings
from azgo_runtime.client import Backoff
from azgo_runtime.service import StopFlag
from azgo_runtime.status import StatusUnavailable, fetch_status
from azgo_tools.cpu import CpuMeter, split_text
from azgo_tools.keys import DEFAULT_CLIENTS, create_keys
from azgo_tools.report import count_text, share_text

log = logging.getLogger("azgo.run")

STARTUP_TIMEOUT = 120.0  # seconds for the broker's first /healthz (first start compiles numba kernels)
STOP_TIMEOUT = 30.0  # seconds each child gets to stop before SIGKILL
EXIT_USAGE = 2  # a service's exit status for a bad config or a refused start: restarting cannot help
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the launcher dies, however it dies (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: children outlive a killed launcher; its pid file says so


@dataclass
class Child:
    """One supervised service process."""

    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen | None = None
    restarts: int = 0
    backoff: Backoff = field(default_factory=lambda: Backoff(1.0, 30.0))
    restart_at: float = 0.0

    def start(self, env: dict) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                         preexec_fn=_die_with_parent)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM and wait; SIGKILL after ``timeout``."""
        if not self.alive():
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s: killing it", self.name, timeout)
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _fmt_clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _metric_sum_count(text: str, name: str) -> tuple[float, float]:
    """(sum, count) of a histogram in Prometheus text, 0s when absent."""
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith(f"{name}_sum"):
            total = float(line.split()[-1])
        elif line.startswith(f"{name}_count"):
            count = float(line.split()[-1])
    return total, count


class Progress:
    """Turns successive /status snapshots into progress lines (rates over the last interval)."""

    def __init__(self, url: str, workers: int, cpu: CpuMeter | None = None):
        self.url, self.workers, self.cpu = url, workers, cpu
        self.t0 = time.monotonic()
        self.prev: tuple[float, dict] | None = None
        self.gen_seen: tuple[int, float] | None = None  # (generation, when first seen)

    def line(self) -> str:
        now = time.monotonic()
        try:
            status = fetch_status(self.url)
        except StatusUnavailable as e:
            return f"[{_fmt_clock(now - self.t0)}] {e}"
        totals = status.get("totals", {})
        games, positions, bytes_in = totals.get("games", 0), totals.get("positions", 0), totals.get("bytes_in", 0)
        net = 0.0
        if self.prev:
            net = (bytes_in - self.prev[1].get("bytes_in", 0)) / max(1e-6, now - self.prev[0])
        self.prev = (now, totals)
        # self-play rates from the workers' heartbeats (a sliding window there): the stored totals
        # move in steps of distributed.batch_size games, the workers' figures move smoothly
        workers = [w for w in status.get("workers", []) if w.get("state") != "Offline"]
        played = sum(w.get("games_total", 0) for w in status.get("workers", []))
        g_rate = sum(w.get("games_per_s", 0.0) for w in workers)
        p_rate = sum(w.get("positions_per_s", 0.0) for w in workers)
        model = status.get("model") or {}
        gen = model.get("generation")
        if gen is not None and (self.gen_seen is None or self.gen_seen[0] != gen):
            self.gen_seen = (gen, now)
        learner = status.get("learner") or {}
        active = status.get("workers_by_state", {}).get("Active", 0)
        parts = [
            f"[{_fmt_clock(now - self.t0)}]",
            f"games {played:,} played ({g_rate:.2f}/s, {g_rate * 3600:,.0f}/h) {games:,} stored",
            f"positions {positions:,} stored ({p_rate:,.0f}/s)",
            f"gen {'-' if gen is None else f'{gen:06d}'}"
            + (f" ({_fmt_age(now - self.gen_seen[1])} ago)" if self.gen_seen else ""),
        ]
        if learner:
            loss = learner.get("loss_total")
            parts.append(f"step {learner.get('step', 0):,} loss {'-' if loss is None else f'{loss:.3f}'}"
                         + (" (waiting for games)" if learner.get("waiting") else ""))
        health = learner.get("health") or {}
        if health.get("games"):
            parts.append(health_text(health))
        latest = (status.get("ratings") or {}).get("latest") or {}
        if latest.get("elo") is not None:
            parts.append(f"elo {latest['elo']:+.0f} (gen {latest.get('generation') or 0:06d})")
        parts.append(f"workers active {active}/{self.workers}")
        try:
            with urllib.request.urlopen(self.url.rstrip("/") + "/metrics", timeout=3) as r:
                total, count = _metric_sum_count(r.read().decode(), "azgo_model_sync_seconds")
            if count:
                parts.append(f"sync {total / count:.2f}s")
        except OSError:
            pass
        parts.append(f"net in {net / 1000:,.1f} kB/s")
        if self.cpu is not None:
            parts.append("\n           " + split_text(self.cpu.sample()))
        warnings = [f"\n           WARNING: {w}" for w in learner.get("health_warnings") or []]
        return "  ".join(parts) + "".join(warnings)


def health_text(h: dict) -> str:
    """The progress line's training-health part, from a ``SelfPlayHealth`` dict."""
    first = "" if h.get("first_pass_move") is None else f" @ {count_text(h['first_pass_move'])}"
    return (f"health B {share_text(h.get('black_win_share'))} resigned {share_text(h.get('resigned_share'))} "
            f"{count_text(h.get('mean_moves'))} moves W-pass-first {share_text(h.get('white_passes_first_share'))}{first}")


class Launcher:
    def __init__(self, settings: Settings, config_path: str, workers: int, stop: StopFlag):
        self.settings, self.stop = settings, stop
        self.data = Path(settings.broker.data_dir).parent
        self.logs = self.data / "logs"
        py = [sys.executable, "-m"]
        conf = ["--config", config_path]
        self.broker = Child("broker", [*py, "azgo_broker", *conf], self.logs / "broker.log")
        self.learner = Child("learner", [*py, "azgo_learner", *conf], self.logs / "learner.log")
        # the evaluator rates each new generation (matches against earlier ones, GNU Go, random)
        self.evaluator = (Child("evaluator", [*py, "azgo_evaluator", *conf], self.logs / "evaluator.log")
                          if settings.evaluation.enabled else None)
        self.workers = [
            Child(f"local-{i}", [*py, "azgo_selfplay", *conf, "--worker-id", f"local-{i}"], self.logs / f"selfplay-{i}.log")
            for i in range(1, workers + 1)
        ]
        port = settings.broker.http_port
        host = "127.0.0.1" if settings.broker.bind in ("0.0.0.0", "::") else settings.broker.bind
        self.url = f"http://{host}:{port}"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.pidfile = self.data / "run.pid"
        self.cpu = CpuMeter(self.cpu_roots)

    def cpu_roots(self) -> list[tuple[str, int]]:
        """(role, pid) of every running child, for the CPU split."""
        roles = {"broker": "broker", "learner": "learner", "evaluator": "evaluator"}
        return [(roles.get(c.name, "self-play"), c.proc.pid) for c in self.children() if c.alive()]

    # --- lifecycle ------------------------------------------------------------------------
    def claim(self) -> None:
        """Refuse to start beside a live run on the same data; take over a stale pid file."""
        self.data.mkdir(parents=True, exist_ok=True)
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            pass
        else:
            if pid != os.getpid():
                raise SystemExit(f"error: another `azgo run` (pid {pid}) is using {self.data}; stop it first")
        self.pidfile.write_text(f"{os.getpid()}\n")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def ensure_keys(self) -> None:
        """With CURVE on (the broker binds beyond loopback), make the key pairs this run needs if missing."""
        if not self.settings.curve_enabled:
            return
        keys_dir = Path(self.settings.security.keys_dir)
        clients = list(dict.fromkeys([*DEFAULT_CLIENTS, *filter(None, [self.settings.security.client_key])]))
        created = create_keys(keys_dir, clients)
        log.info("CURVE is on (broker bind %s): keys in %s/%s", self.settings.broker.bind, keys_dir,
                 f", made {', '.join(created)}" if created else "")

    def start(self) -> bool:
        self.ensure_keys()
        log.info("starting the broker (log %s)", self.broker.log_path)
        self.broker.start(self.env)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.healthy():
            if not self.broker.alive():
                log.error("the broker exited with status %s:\n%s", self.broker.proc.returncode, self.broker.tail())
                return False
            if self.stop.wait(0.2):
                return False
            if time.monotonic() > deadline:
                log.error("the broker did not become healthy at %s/healthz within %.0f s", self.url, STARTUP_TIMEOUT)
                return False
        log.info("broker healthy at %s; starting the learner, %s%d self-play worker(s) (logs in %s)",
                 self.url, "the evaluator, " if self.evaluator else "", len(self.workers), self.logs)
        for child in self.children()[1:]:
            child.start(self.env)
        return True

    def children(self) -> list[Child]:
        """The broker first, then the learner, the evaluator (if any) and the workers."""
        return [self.broker, self.learner, *([self.evaluator] if self.evaluator else []), *self.workers]

    def supervise(self) -> bool:
        """Restart children that died (with back-off), reporting each death with its log tail.

        A child that exits 0 has finished its work (``self_play.games_per_worker``) and one that
        exits 2 refused to start (bad config, an id in use): neither is restarted. Returns False
        when the run cannot go on (the broker refused to start).
        """
        now = time.monotonic()
        for child in self.children():
            if child.alive() or child.proc is None or child.restart_at < 0:
                continue
            code = child.proc.returncode
            if code in (0, EXIT_USAGE):
                child.restart_at = -1.0  # never again
                if code == 0:
                    log.info("%s finished (exit status 0); not restarting it", child.name)
                else:
                    log.error("%s refused to start (exit status 2); not restarting it. Log tail:\n%s", child.name, child.tail())
                    if child is self.broker:
                        return False
            elif child.restart_at == 0.0:
                delay = child.backoff.delay()
                log.error("%s exited with status %s; restarting in %.0f s. Log tail:\n%s", child.name, code, delay, child.tail())
                child.restart_at = now + delay
            elif now >= child.restart_at:
                child.restart_at = 0.0
                child.restarts += 1
                child.start(self.env)
        return True

    def shutdown(self) -> None:
        """Workers, then the learner, then the broker, each given time to stop cleanly."""
        self.cpu.sample()
        log.info("CPU over the run: %s", split_text(self.cpu.overall()))
        log.info("stopping: self-play workers, then the learner, then the broker")
        try:
            for child in self.workers:  # all at once: they flush their outboxes in parallel
                if child.alive():
                    child.proc.send_signal(signal.SIGTERM)
            for child in self.workers:
                child.stop()
            if self.evaluator:
                self.evaluator.stop()
            self.learner.stop()
            self.broker.stop()
        finally:  # whatever interrupted the orderly stop, no child outlives the launcher
            self.kill_all()
        try:
            self.pidfile.unlink()
        except FileNotFoundError:
            pass
        log.info("stopped; `make run` again resumes from here")

    def kill_all(self) -> None:
        for child in reversed(self.children()):
            child.kill()

    def run(self, duration: float | None) -> int:
        self.claim()
        try:
            if not self.start():
                return 0 if self.stop.is_set() else 1
            progress = Progress(self.url, len(self.workers), self.cpu)
            end = None if duration is None else time.monotonic() + duration
            interval = self.settings.run.progress_interval
            while not self.stop.wait(interval):
                if not self.supervise():
                    return 1
                print(progress.line(), flush=True)
                if end is not None and time.monotonic() >= end:
                    break
            return 0
        finally:
            self.shutdown()


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    try:
        settings = load_settings(args.config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if settings.broker.http_port == 0:
        print("error: broker.http_port is 0 (any free port): `azgo run` needs a fixed port to follow the broker; "
              "set broker.http_port", file=sys.stderr)
        return 2
    workers = settings.run.selfplay_workers if args.workers is None else args.workers
    stop = StopFlag()
    launcher = Launcher(settings, args.config, workers, stop)

    def force() -> None:
        log.warning("second stop signal: killing every process now")
        launcher.kill_all()

    stop.on_repeat = force
    return launcher.run(args.duration)
