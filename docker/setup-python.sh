#!/bin/sh
# The `python` stage of docker/Dockerfile: Python >= 3.11 with venv on any Debian or Ubuntu
# base, the unprivileged user `azgo` (uid 10001) and the data folders it owns.
#
# Python slim images have it already; others (a CUDA runtime image, a bare Debian) get the
# distribution's python3 and python3-venv over apt, without recommended packages: no
# compilers, no headers.
set -eu

has_python() {
    python3 -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

if ! has_python; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends python3 python3-venv
    rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
    if ! has_python; then
        echo "error: the base image's python3 is $(python3 --version 2>&1); azgo needs 3.11 or newer with venv" >&2
        exit 1
    fi
fi

id azgo >/dev/null 2>&1 || useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin azgo
# The named volumes start as copies of these folders, owned by azgo.
# /opt/numba-cache: numba's compiled kernels (docker/warm_numba.py fills it at build time).
mkdir -p /app /data/broker /data/learner /data/selfplay /data/evaluator /opt/numba-cache
chown azgo:azgo /data/broker /data/learner /data/selfplay /data/evaluator /opt/numba-cache
