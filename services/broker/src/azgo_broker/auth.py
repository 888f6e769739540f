"""Who may talk to the broker: a ZAP handler (RFC 27) over an allow-list of CURVE public keys.

With CURVE on, libzmq asks the ZAP handler at ``inproc://zeromq.zap.01`` about every new
connection to the ROUTER or the PUB socket; ``Authenticator`` answers those requests from the
broker's own poll loop (no thread): 200 for a public key in ``authorized/``, 400 for anything
else, and the connection is closed before a single message passes. An admitted connection's
messages carry the key as their ``User-Id``; the broker checks it on every request
(``allowed``), so a key removed from ``authorized/`` is refused at once, also on connections
made before the removal.

The allow-list is the folder's ``*.key`` files (ZeroMQ's certificate format, as ``make keys``
writes them); ``reload`` re-reads it when the names, sizes or times of its files change, so
keys are added and revoked without a restart. A file that is not a public key is skipped with
a log line naming it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import zmq
import zmq.auth
from zmq.utils import z85

log = logging.getLogger("azgo.broker.auth")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # fixed by RFC 27
ZAP_VERSION = b"1.0"


def _listing(folder: Path) -> tuple | None:
    """What identifies the folder's contents for reloading: (name, size, mtime) of each ``*.key`` file
    (hidden files are temporaries of a writer); None when the folder cannot be read just now."""
    try:
        paths = [p for p in folder.iterdir() if p.suffix == ".key" and not p.name.startswith(".")]
    except FileNotFoundError:
        return ()
    except OSError as e:
        log.error("allow-list folder %s unreadable (%s): keeping the keys loaded before", folder, e)
        return None
    found = []
    for p in paths:
        try:
            st = p.stat()
        except FileNotFoundError:  # removed between the listing and now: revoked, as it should be
            continue
        found.append((p.name, st.st_size, st.st_mtime_ns))
    return tuple(sorted(found))


class Authenticator:
    """The broker's ZAP handler and allow-list (see the module docstring)."""

    def __init__(self, context: zmq.Context, folder: Path, reload_interval: float = 1.0):
        self.folder = Path(folder)
        self.reload_interval = reload_interval
        self.keys: dict[bytes, str] = {}  # z85 public key -> its file's name
        self.names: dict[bytes, str] = {}  # every key ever admitted -> its name, for naming revoked ones
        self.denied = 0
        self._listing: tuple | None = None
        self._next_reload = 0.0
        self._next_denied_log = 0.0
        self._denied_since_log = 0
        self.sock = context.socket(zmq.REP)
        self.sock.linger = 0
        self.sock.bind(ZAP_ENDPOINT)  # before any CURVE socket binds: no handshake goes unanswered
        self.reload(force=True)

    def close(self) -> None:
        self.sock.close(linger=0)

    # --- the allow-list -------------------------------------------------------------------
    def reload(self, now: float | None = None, *, force: bool = False) -> bool:
        """Re-read ``authorized/`` when its files changed (at most every ``reload_interval``); True if the keys changed."""
        now = time.monotonic() if now is None else now
        if not force and now < self._next_reload:
            return False
        self._next_reload = now + self.reload_interval
        listing = _listing(self.folder)
        if listing is None or (listing == self._listing and not force):
            return False
        self._listing = listing
        keys: dict[bytes, str] = {}
        for name, _, _ in listing:
            path = self.folder / name
            try:
                public, _secret = zmq.auth.load_certificate(path)
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as e:
                log.error("allow-list: %s skipped: not a ZeroMQ public key file (%s)", path, e)
                continue
            if public:
                keys[public] = path.stem
        if not self.folder.is_dir():
            log.error("allow-list folder %s does not exist: no client is admitted (make keys)", self.folder)
        added = sorted(keys[k] for k in keys.keys() - self.keys.keys())
        revoked = sorted(self.keys[k] for k in self.keys.keys() - keys.keys())
        changed = keys != self.keys
        self.keys = keys
        self.names.update(keys)
        if changed or force:
            log.info("allow-list %s: %d key(s)%s%s", self.folder, len(keys),
                     f"; added {', '.join(added)}" if added and not force else "",
                     f"; revoked {', '.join(revoked)}" if revoked else "")
        return changed

    def allowed(self, user_id: str | None) -> bool:
        """Whether a connection whose ZAP User-Id is ``user_id`` (its z85 public key) is still admitted."""
        return user_id is not None and user_id.encode() in self.keys

    def name_of(self, user_id: str | None) -> str:
        return self.names.get((user_id or "").encode(), "?")

    # --- ZAP ------------------------------------------------------------------------------
    def handle(self) -> None:
        """Answer every ZAP request waiting (RFC 27: version, request id, domain, address, identity, mechanism, credentials)."""
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                self._answer(frames)
            except Exception:  # a bug here must cost one refused handshake, never the broker
                log.exception("ZAP request failed")
                self._reply(frames[1] if len(frames) > 1 else b"", b"500", b"internal error")

    def _answer(self, frames: list[bytes]) -> None:
        if len(frames) < 6:
            log.error("malformed ZAP request of %d frames", len(frames))
            self._reply(frames[1] if len(frames) > 1 else b"", b"500", b"malformed request")
            return
        version, request_id, _domain, address, _identity, mechanism, *credentials = frames
        if version != ZAP_VERSION:
            self._reply(request_id, b"500", b"unsupported ZAP version")
            return
        if mechanism != b"CURVE" or not credentials or len(credentials[0]) != 32:
            self._deny(request_id, address, "CURVE required")
            return
        key = z85.encode(credentials[0])
        name = self.keys.get(key)
        if name is None:
            self._deny(request_id, address, f"public key {key.decode()} is not in the allow-list")
            return
        log.debug("admitted %s (key %s) from %s", name, key.decode()[:8], address.decode(errors="replace"))
        self._reply(request_id, b"200", b"OK", user_id=key)

    def _deny(self, request_id: bytes, address: bytes, reason: str) -> None:
        self.denied += 1
        self._denied_since_log += 1
        now = time.monotonic()
        if now >= self._next_denied_log:  # one line per 10 s, however many are knocking
            log.warning("refused %d connection(s) in the last period; latest from %s: %s", self._denied_since_log,
                        address.decode(errors="replace"), reason)
            self._next_denied_log, self._denied_since_log = now + 10.0, 0
        self._reply(request_id, b"400", reason.encode())

    def _reply(self, request_id: bytes, status: bytes, text: bytes, user_id: bytes = b"") -> None:
        self.sock.send_multipart([ZAP_VERSION, request_id, status, text, user_id, b""])
