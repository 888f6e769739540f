"""Who a worker is: its id, and the folder only it may use.

The worker id names the worker in the broker's status table, in every game record and in
its batch ids (``<worker_id>-<uuid4 hex>``), so it must match the protocol's ``Id`` pattern
(letters, digits, ``_ . : @ -``) and leave room for the 33 characters a batch id adds. It is
``--worker-id``, else ``$AZGO_WORKER_ID``, else the host name (a container's host name is
unique per container). Two processes with one id would share an outbox and confuse the
broker, so a worker holds an exclusive lock on ``<data_dir>/<worker_id>/lock`` while it runs
(the kernel drops the lock when the process dies, even by SIGKILL).
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
from pathlib import Path
from typing import IO

from azgo_core.protocol import ID_CHARS, MAX_ID_LEN

ENV_WORKER_ID = "AZGO_WORKER_ID"
MAX_WORKER_ID_LEN = MAX_ID_LEN - 33  # "-" + 32 hex digits of the batch id's uuid


class WorkerIdInUse(RuntimeError):
    """Another running process already uses this worker id (and its outbox)."""


def sanitize_worker_id(raw: str) -> str:
    """``raw`` with every run of characters outside the Id pattern replaced by '-', cut to length."""
    cleaned = re.sub(rf"[^{ID_CHARS}]+", "-", raw.strip()).strip("-")[:MAX_WORKER_ID_LEN]
    return cleaned or "worker"


def resolve_worker_id(given: str | None = None) -> str:
    """``given``, else $AZGO_WORKER_ID, else the host name; sanitized."""
    return sanitize_worker_id(given or os.environ.get(ENV_WORKER_ID) or socket.gethostname())


def claim_worker_dir(home: Path) -> IO:
    """Create ``home`` and lock it for this process; the returned file holds the lock until closed."""
    home.mkdir(parents=True, exist_ok=True)
    f = open(home / "lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise WorkerIdInUse(f"another process is running as worker {home.name!r} (it holds {home / 'lock'}); "
                            "give this one another --worker-id") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f
