"""What the container and deploy tests share: whether Docker can run here, and the compose environment.

``require_docker()`` skips a test without an engine and fails it with ``CI=true`` (where
``.ci/run`` must have provided one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TAG = "test"  # images azgo/<service>:test, so a developer's :dev images are left alone
BUILD_ARGS = ("AZGO_BASE_IMAGE", "AZGO_WHEELHOUSE")


# --- the engine and the images -----------------------------------------------------------------
def _docker_problem() -> str | None:
    """Why the container tests cannot run here, or None."""
    if not shutil.which("docker"):
        return "no docker client on the PATH"
    try:
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30)
        if info.returncode != 0:
            return f"no Docker engine answers: {info.stderr.strip()[:200]}"
        compose = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "docker did not answer within 30 s"
    if compose.returncode != 0:
        return "no docker compose plugin (deploy/ci-docker.sh installs one)"
    return None


def require_docker() -> None:
    problem = _docker_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {problem}: .ci/run must provide Docker (deploy/ci-docker.sh)")
        pytest.skip(problem)


def compose_env(**extra: str) -> dict[str, str]:
    """The environment for `docker compose`: no AZGO_* from the caller but the build arguments,
    which come from build/docker.env when the caller has none."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZGO_") or k in BUILD_ARGS}
    docker_env = ROOT / "build" / "docker.env"
    if docker_env.exists():
        for line in docker_env.read_text().splitlines():
            key, _, value = line.partition("=")
            if key in BUILD_ARGS:
                env.setdefault(key, value)
    env["AZGO_IMAGE_TAG"] = TAG
    env.update(extra)
    return env
