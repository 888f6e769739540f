"""The CPU split of `make run`: each role's process tree, descendants included, from /proc."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

from procs import wait_for

from azgo_tools.cpu import ROLES, CpuMeter, process_times, split_text, tree_seconds

BUSY = "import time\nend = time.process_time() + 60\nwhile time.process_time() < end: pass"


def test_a_role_is_charged_for_its_descendants_and_an_idle_role_for_nothing():
    # the 'evaluator' is an idle shell whose child burns CPU (as GNU Go under the evaluator);
    # the 'broker' only waits
    busy = subprocess.Popen(["sh", "-c", f'"{sys.executable}" -c "$BUSY" & wait'], env={"BUSY": BUSY},
                            start_new_session=True)
    idle = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        meter = CpuMeter(lambda: [("evaluator", busy.pid), ("broker", idle.pid)])
        meter.sample()

        def charged():
            meter.sample()
            return meter.used["evaluator"] > 0.3 and meter.used

        used = wait_for(charged, 30, "the busy grandchild's CPU charged to its role")
        parents, seconds = process_times()
        assert seconds[busy.pid] < 0.1  # the shell itself does nothing...
        assert tree_seconds(busy.pid, parents, seconds) > 0.3  # ...its tree does
        assert used["broker"] < 0.1 and used["self-play"] == 0.0 and used["learner"] == 0.0
        overall = meter.overall()
        assert 0 < overall["evaluator"] <= 100 * 1.05  # one busy process: at most one core
    finally:
        os.killpg(busy.pid, signal.SIGKILL)  # the shell and its busy child
        idle.kill()
        busy.wait()
        idle.wait()


def test_a_gone_process_keeps_what_it_used_and_a_restart_starts_from_zero():
    first = subprocess.Popen([sys.executable, "-c", BUSY])
    roots = [("learner", first.pid)]
    meter = CpuMeter(lambda: roots)
    wait_for(lambda: meter.sample() and meter.used["learner"] > 0.2, 30, "the learner's CPU")
    first.kill()
    first.wait()
    before = meter.used["learner"]
    second = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    roots[:] = [("learner", second.pid)]
    try:
        meter.sample()
        assert before <= meter.used["learner"] < before + 0.5  # nothing negative, no double count
    finally:
        second.kill()
        second.wait()


def test_split_text_lists_every_role_in_order():
    text = split_text({"broker": 3.2, "learner": 18.0, "self-play": 104.4, "evaluator": 41.6}, cores=2)
    assert text == "cpu self-play 104% learner 18% evaluator 42% broker 3% of 200%"
    assert re.findall(r"([a-z-]+) \d+%", text)[:4] == list(ROLES)
