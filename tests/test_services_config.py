"""Every service refuses a bad configuration at start: exit status 2, the field's path and the
reason on stderr, before it binds a socket or writes a file."""

from __future__ import annotations

import subprocess
import sys

import pytest
from procs import clean_environ, tiny_config


@pytest.mark.parametrize("service", ["broker", "learner", "selfplay"])
@pytest.mark.parametrize(
    "env, path",
    [
        ({"AZGO_DISTRIBUTED__BATCH_SIZE": "0"}, "distributed.batch_size"),
        ({"AZGO_SELF_PLAY__PARALLEL_GAMES": "lots"}, "self_play.parallel_games"),
        ({"AZGO_BROKER__ROUTER_PORT": "70000"}, "broker.router_port"),
    ],
)
def test_bad_value_stops_the_service_with_the_field_path(tmp_path, service, env, path):
    config = tiny_config(tmp_path)
    proc = subprocess.run([sys.executable, "-m", f"azgo_{service}", "--config", str(config)],
                          env={**clean_environ(), **env}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert path in proc.stderr and "invalid configuration" in proc.stderr
    assert not (tmp_path / "broker").exists() and not (tmp_path / "learner").exists()  # nothing was written


def test_a_typo_in_the_file_is_refused(tmp_path):
    config = tiny_config(tmp_path, distributed={"batch_sise": 10})
    proc = subprocess.run([sys.executable, "-m", "azgo_broker", "--config", str(config)],
                          env=clean_environ(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "distributed.batch_sise: unknown setting" in proc.stderr
