"""The whole system as `make run` starts it: broker, learner and two self-play workers as real
processes on loopback (tiny 5x5 config), supervised by `azgo run`.

It must reach generation 2 with games stored and trained on, show the generation in /status and
/metrics, have the workers adopt it, answer `azgo status`, stop cleanly on Ctrl-C and resume.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from procs import clean_environ, get_json, get_text, http_url, tiny_config, wait_for
from prometheus_client.parser import text_string_to_metric_families

WORKERS = 2
CPU_LINE = re.compile(r"cpu self-play (\d+)% learner (\d+)% evaluator (\d+)% broker (\d+)% of (\d+)%")


def launch(config: Path, out: Path) -> subprocess.Popen:
    with open(out, "ab") as f:
        return subprocess.Popen([sys.executable, "-m", "azgo_tools.cli", "run", "--config", str(config),
                                 "--workers", str(WORKERS)], stdout=f, stderr=subprocess.STDOUT, env=clean_environ())


def metric(config: Path, name: str) -> list:
    families = {f.name: f for f in text_string_to_metric_families(get_text(http_url(config, "/metrics")))}
    return families[name].samples


def stop(proc: subprocess.Popen, out: Path) -> None:
    proc.send_signal(signal.SIGINT)  # what Ctrl-C does
    try:
        assert proc.wait(90) == 0, out.read_text()
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("azgo run did not stop within 90 s:\n" + out.read_text()) from None


def test_make_run_trains_publishes_and_resumes(tmp_path):
    config = tiny_config(tmp_path, run={"progress_interval": 0.5}, evaluation={"enabled": True})
    status_url = http_url(config, "/status")
    out = tmp_path / "run.out"
    proc = launch(config, out)
    try:
        status = wait_for(lambda: (s := get_json(status_url))["model"] and s["model"]["generation"] >= 2 and s,
                          240, "generation 2 in /status")
        assert status["totals"]["games"] > 0 and status["totals"]["positions"] > 0
        assert status["learner"]["step"] > 0 and status["learner"]["samples_trained"] > 0

        # every worker Active on the current generation (they adopt what the learner publishes)
        def adopted():
            s = get_json(status_url)
            gen = s["model"]["generation"]
            ws = s["workers"]
            return len(ws) == WORKERS and all(w["state"] == "Active" and w["generation"] == gen for w in ws) and s
        status = wait_for(adopted, 60, "both workers Active on the current generation")
        assert sorted(w["worker_id"] for w in status["workers"]) == ["local-1", "local-2"]

        gen_metric = metric(config, "azgo_model_generation")[0].value
        assert gen_metric >= 2
        games_metric = [s for s in metric(config, "azgo_games_received") if s.name.endswith("_total")][0].value
        assert games_metric >= status["totals"]["games"] > 0

        table = subprocess.run([sys.executable, "-m", "azgo_tools.cli", "status", "--url", http_url(config, "")],
                               capture_output=True, text=True, timeout=30)
        assert table.returncode == 0, table.stderr
        assert "local-1" in table.stdout and "local-2" in table.stdout and "Active" in table.stdout

        wait_for(lambda: "games" in out.read_text() and "workers active 2/2" in out.read_text(), 30, "a progress line")
        # the training health of the stored games: in /status and in the progress line
        health = wait_for(lambda: get_json(status_url)["learner"].get("health"), 60, "training health in /status")
        assert health["games"] > 0 and 0 <= health["black_win_share"] <= 1 and health["mean_moves"] > 0
        wait_for(lambda: " health B " in out.read_text(), 30, "the training health in the progress line")
        # where the CPU goes, by role: the workers are busy playing
        split = wait_for(lambda: [int(m) for m in CPU_LINE.findall(out.read_text())[-1]], 30, "the CPU split")
        assert split[0] > 0 and split[-1] == 100 * os.cpu_count(), split
        # the evaluator runs beside them: ratings reach /status and the progress line
        wait_for(lambda: (get_json(status_url).get("ratings") or {}).get("latest"), 120, "a rating in /status")
        wait_for(lambda: " elo " in out.read_text(), 30, "the Elo in the progress line")
    finally:
        stop(proc, out)
    assert "stopped" in out.read_text()
    overall = re.search(r"CPU over the run: " + CPU_LINE.pattern, out.read_text())
    assert overall and int(overall.group(1)) > 0, out.read_text()[-2000:]
    assert not (tmp_path / "run.pid").exists()
    try:  # the broker is down with the rest
        get_json(status_url, timeout=1)
        raise AssertionError("the broker still answers after azgo run stopped")
    except OSError:
        pass

    # a second run resumes: the learner starts from its checkpoint, generations go on upwards
    first_gen = max(int(p.stem) for p in (tmp_path / "broker" / "models").glob("*.json"))
    learner_log = tmp_path / "logs" / "learner.log"
    proc = launch(config, out)
    try:
        wait_for(lambda: "resumed from" in learner_log.read_text(), 120, "the learner resuming from its checkpoint")
        wait_for(lambda: get_json(status_url)["model"]["generation"] > first_gen, 240, "a generation above the first run's")
    finally:
        stop(proc, out)


def processes_using(config: Path) -> list[int]:
    """Pids of live processes whose command line names ``config``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                status = (entry / "status").read_text()
            except OSError:
                continue
            if str(config) in cmdline and "State:\tZ" not in status:
                pids.append(int(entry.name))
    return pids


def test_children_die_with_a_killed_launcher(tmp_path):
    config = tiny_config(tmp_path, run={"progress_interval": 0.5})
    out = tmp_path / "run.out"
    proc = launch(config, out)
    try:
        wait_for(lambda: len(get_json(http_url(config, "/status"))["workers"]) == WORKERS, 120, "both workers at the broker")
        assert len(processes_using(config)) == 1 + 1 + 1 + WORKERS  # launcher, broker, learner, workers
    finally:
        proc.kill()  # SIGKILL: no chance to stop its children itself
        proc.wait()
    wait_for(lambda: processes_using(config) == [], 60, "every child of the killed launcher to exit")
