"""ZeroMQ CURVE on the broker's sockets: which key files each side loads.

CURVE (RFC 26) encrypts every byte between a client and the broker and authenticates both
ends by their long-term key pairs; the broker admits only the public keys in its allow-list
(``authorized/``, see ``azgo_broker.auth``). ``Settings.curve_enabled`` says whether it is on
(``security.curve``: auto = the broker binds beyond loopback). The files are the ones
``make keys`` writes (``azgo_tools.keys``), under ``security.keys_dir``:

    broker side     broker.key_secret            its own pair
                    authorized/*.key             the public keys it admits
    client side     broker.key                   the broker's public key (whom to trust)
                    workers/NAME.key_secret      its own pair; NAME.key_secret at the top
                    or NAME.key_secret           level is the container layout (/run/secrets)

NAME is ``security.client_key``, else the client's role (``selfplay``, ``learner``,
``evaluator``). A missing or malformed file is a ``CurveKeyError`` naming the file and the
command that makes it.
"""

from __future__ import annotations

from pathlib import Path

import zmq.auth
from zmq.utils import z85

from azgo_core.config import Settings


class CurveKeyError(ValueError):
    """A key file CURVE needs is missing or unreadable; the message names it."""


def _hint(settings: Settings) -> str:
    why = ("security.curve is true" if settings.security.curve is True
           else f"the broker binds {settings.broker.bind}, beyond loopback (security.curve: auto)")
    return f"CURVE is on ({why}); `make keys` writes the key files, `security.keys_dir` says where they are"


def _load(path: Path, settings: Settings, *, secret: bool) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise CurveKeyError(f"missing key file {path}: {_hint(settings)}")
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise CurveKeyError(f"key file {path} is not a ZeroMQ certificate: {e}") from None
    if public is None or (secret and secret_key is None):
        raise CurveKeyError(f"key file {path} holds no {'secret' if secret else 'public'} key")
    for key in filter(None, (public, secret_key)):
        try:
            if len(key) != 40 or len(z85.decode(key)) != 32:
                raise ValueError(f"{len(key)} characters, not 40")
        except (ValueError, KeyError, IndexError, TypeError) as e:  # a garbled key would only fail later, in libzmq
            raise CurveKeyError(f"key file {path} holds a malformed key ({e})") from None
    return public, secret_key


def server_keys(settings: Settings) -> tuple[bytes, bytes] | None:
    """The broker's (public, secret) z85 keys, or None when CURVE is off."""
    if not settings.curve_enabled:
        return None
    public, secret = _load(Path(settings.security.keys_dir) / "broker.key_secret", settings, secret=True)
    return public, secret


def authorized_dir(settings: Settings) -> Path:
    """The broker's allow-list folder of client public keys."""
    return Path(settings.security.keys_dir) / "authorized"


def client_key_path(settings: Settings, role: str) -> Path:
    """A client's secret key file: workers/NAME.key_secret, else NAME.key_secret (containers)."""
    keys = Path(settings.security.keys_dir)
    name = settings.security.client_key or role
    candidates = [keys / "workers" / f"{name}.key_secret", keys / f"{name}.key_secret"]
    return next((p for p in candidates if p.is_file()), candidates[0])


def client_curve(settings: Settings, role: str) -> dict | None:
    """Socket options for a client (``azgo_runtime.client.apply_curve``), or None when CURVE is off."""
    if not settings.curve_enabled:
        return None
    public, secret = _load(client_key_path(settings, role), settings, secret=True)
    server, _ = _load(Path(settings.security.keys_dir) / "broker.key", settings, secret=False)
    return {"publickey": public, "secretkey": secret, "serverkey": server}
