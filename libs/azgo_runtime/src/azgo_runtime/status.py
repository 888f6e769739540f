"""The broker's ``/status`` JSON over HTTP: the worker table's data, for the evaluator (which
reads the current generation from it) and for ``azgo status`` (``azgo_tools.status`` renders it).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request


class StatusUnavailable(ConnectionError):
    pass


def fetch_status(url: str, timeout: float = 3.0) -> dict:
    """GET ``url``/status as a dict; ``StatusUnavailable`` says why not."""
    target = url.rstrip("/") + "/status"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as r:
            return json.loads(r.read())
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise StatusUnavailable(f"broker not reachable at {target}: {reason}") from None
    except json.JSONDecodeError as e:
        raise StatusUnavailable(f"{target} did not answer JSON: {e}") from None
