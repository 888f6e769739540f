#!/bin/sh
# Entry point of the test host: the authorized key, the engine, then sshd in the foreground.
#
#   AZGO_AUTHORIZED_KEY   an SSH public key line that may log in as root (required)
#   AZGO_ENGINE           "dockerd" (default) starts the engine; "stopped" leaves it stopped;
#                         "none" removes Docker altogether (hosts `make doctor` must report)
#   AZGO_DOCKERD_ARGS     the engine's arguments (default: no iptables, no bridge, and overlay2
#                         storage when /var/lib/docker is a volume, else vfs: overlay2 cannot
#                         sit on the container's own overlay filesystem, and vfs copies the
#                         whole image once per layer)
set -eu

if [ -z "${AZGO_AUTHORIZED_KEY:-}" ]; then
    echo "error: AZGO_AUTHORIZED_KEY (an SSH public key) is required" >&2
    exit 2
fi
printf '%s\n' "$AZGO_AUTHORIZED_KEY" >/root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
ssh-keygen -A >/dev/null  # host keys of this container's own (the image carries none)

if [ "${AZGO_ENGINE:-dockerd}" = dockerd ]; then
    storage=vfs
    mountpoint -q /var/lib/docker && storage=overlay2
    # shellcheck disable=SC2086  # word splitting of the arguments is intended
    dockerd ${AZGO_DOCKERD_ARGS:---storage-driver=$storage --iptables=false --bridge=none} >/var/log/dockerd.log 2>&1 &
elif [ "$AZGO_ENGINE" = none ]; then
    # no Docker at all, as on a fresh machine
    rm -f /usr/bin/docker /usr/sbin/dockerd /usr/bin/dockerd
fi
exec /usr/sbin/sshd -D -e
