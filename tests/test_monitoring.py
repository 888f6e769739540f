"""The Prometheus side of monitoring, without containers: Debian's promtool checks deploy/prometheus.yml
and deploy/alerts.yml, and runs the rules' unit tests (deploy/alerts.test.yml: each alert fires on the
series it is meant for, after its `for:`, and stays quiet before). A broken rule must fail the check.
The compose test of the same files (Prometheus scraping the broker, an alert on a killed worker) is
in test_containers.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def promtool(*args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess:
    assert Path(PROMTOOL).exists(), "promtool missing: Debian's prometheus package (.ci/run and make test install it)"
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_promtool_checks_the_config_and_the_rules():
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout
    rules = promtool("check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 6 rules found" in rules.stdout


def test_alert_rules_unit_tests_pass():
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_broken_rule_fails_the_check(tmp_path):
    text = (DEPLOY / "alerts.yml").read_text().replace('azgo_workers{state="Offline"} > 0', 'azgo_workers{state="Offline" > 0')
    (tmp_path / "alerts.yml").write_text(text)
    result = promtool("check", "rules", "alerts.yml", cwd=tmp_path)
    assert result.returncode != 0 and "FAILED" in result.stdout + result.stderr, result.stdout + result.stderr
