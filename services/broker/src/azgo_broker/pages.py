"""The dashboard's routes on the broker's HTTP port: the page, its static files, its JSON API.

``route(path, query, view)`` answers a GET with a ``Reply`` (status, body or file, type,
headers); ``metrics.HttpServer`` calls it for every path it does not serve itself. Static
files are the package's ``web/`` folder (``web/vendor/uplot``: uPlot from the npm registry,
MIT, its LICENSE beside it), listed once at import: nothing outside it can be named.
Everything is read-only; the page is told never to be framed by another site.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from urllib.parse import parse_qs

from . import dashboard as D

TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml", "LICENSE": "text/plain; charset=utf-8"}
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"}


def _static_files() -> dict[str, bytes]:
    """Every file under web/, by its URL path (/static/...), read once."""
    out: dict[str, bytes] = {}

    def walk(node, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif not child.name.startswith("."):
                out[f"/static/{prefix}{child.name}"] = child.read_bytes()

    walk(resources.files("azgo_broker") / "web", "")
    return out


STATIC = _static_files()


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    file: str | None = None
    """A file to stream instead of ``body`` (a model download)."""


def _type(path: str) -> str:
    for suffix, kind in TYPES.items():
        if path.endswith(suffix):
            return kind
    return "application/octet-stream"


def _json(value) -> Reply:
    return Reply(200, json.dumps(value, allow_nan=False, separators=(",", ":")).encode())


def _int(query: dict, name: str, default: int | None = None) -> int:
    values = query.get(name)
    if not values:
        if default is None:
            raise ValueError(f"missing query parameter {name!r}")
        return default
    try:
        return int(values[0])
    except ValueError:
        raise ValueError(f"query parameter {name!r} is not an integer: {values[0][:20]!r}") from None


def route(path: str, query_string: str, view: D.View) -> Reply | None:
    """The reply to GET ``path``, or None when the dashboard has no such route."""
    query = parse_qs(query_string)
    try:
        if path in ("/", "/index.html"):
            return Reply(200, STATIC["/static/index.html"], TYPES[".html"], dict(SECURITY_HEADERS))
        if path in STATIC:
            return Reply(200, STATIC[path], _type(path), {"Cache-Control": "max-age=300", **SECURITY_HEADERS})
        if path == "/api/series":
            return _json(D.series(view, _int(query, "points", 300)))
        if path == "/api/elo":
            return _json(D.elo(view, _int(query, "points", 200)))
        if path == "/api/models":
            return _json(D.models(view, _int(query, "limit", 100)))
        if path == "/api/games":
            return _json(D.games(view, max(1, min(_int(query, "limit", 20), 200))))
        if path == "/api/game" and "sgf" in query:
            return _json(D.evaluation_game(view, query["sgf"][0]))
        if path == "/api/game":
            return _json(D.game(view, _int(query, "seq"), _int(query, "index")))
        if path == "/api/game.sgf" and "sgf" in query:
            name = query["sgf"][0]
            return Reply(200, D.evaluation_sgf(view, name).encode(), "application/x-go-sgf",
                         {"Content-Disposition": f'attachment; filename="{name}"'})
        if path == "/api/game.sgf":
            seq, index = _int(query, "seq"), _int(query, "index")
            return Reply(200, D.game_sgf(view, seq, index).encode(), "application/x-go-sgf",
                         {"Content-Disposition": f'attachment; filename="azgo-{seq:06d}-{index}.sgf"'})
        if path.startswith("/models/"):
            name = path.removeprefix("/models/")
            return Reply(200, content_type="application/octet-stream", file=D.model_path(view, name),
                         headers={"Content-Disposition": f'attachment; filename="{name}"'})
    except ValueError as e:  # a bad query parameter (RecordError is a ValueError too: a damaged batch)
        return Reply(400, f"{e}\n".encode(), "text/plain; charset=utf-8")
    except D.NotFound as e:
        return Reply(404, f"{e}\n".encode(), "text/plain; charset=utf-8")
    return None
