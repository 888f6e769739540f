"""`azgo status` / `make status`: the worker table from the broker's ``/status`` JSON.

    worker      host   state    gen     at once  games   games/s  evals/s  outbox  last seen
    local-1     box    Active   000004  32       1,204   0.61     412      0       0.4 s

"at once" is the worker's parallel games (a deployed host's weight scales it).

The broker decides Offline (no message within the liveness window); workers report Active,
Syncing (fetching or loading a new generation) and Error (an exception, shown below the table).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from azgo_runtime.status import StatusUnavailable, fetch_status

STATE_STYLE = {"Active": "green", "Syncing": "yellow", "Error": "bold red", "Offline": "dim"}


def _gen(value) -> str:
    return "-" if value is None or value < 0 else f"{value:06d}"


def _num(value, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value, fmt)


def render(status: dict) -> Group:
    """The summary line, the worker table and any worker errors."""
    model = status.get("model") or {}
    totals, rates = status.get("totals", {}), status.get("rates", {})
    by_state = status.get("workers_by_state", {})
    learner = status.get("learner") or {}
    head = Text.assemble(
        ("model ", "bold"), _gen(model.get("generation")),
        ("   games ", "bold"), _num(totals.get("games")),
        ("   positions ", "bold"), _num(totals.get("positions")),
        ("   games/s ", "bold"), _num(rates.get("games_per_s"), ".2f"),
        ("   positions/s ", "bold"), _num(rates.get("positions_per_s"), ".1f"),
    )
    if learner:
        head.append_text(Text.assemble(("   learner step ", "bold"), _num(learner.get("step")),
                                       ("  loss ", "bold"), _num(learner.get("loss_total"), ".3f")))
    states = "  ".join(f"{s} {by_state.get(s, 0)}" for s in ("Active", "Syncing", "Error", "Offline"))
    table = Table(title=f"workers: {states}", title_justify="left", expand=False)
    for col in ("worker", "host", "state", "gen", "at once", "games", "games/s", "evals/s", "outbox", "last seen"):
        table.add_column(col, justify="left" if col in ("worker", "host", "state") else "right", no_wrap=True)
    workers = status.get("workers", [])
    for w in workers:
        state = w.get("state", "?")
        table.add_row(
            w.get("worker_id", "?"), w.get("host", ""), Text(state, style=STATE_STYLE.get(state, "")),
            _gen(w.get("generation")), _num(w.get("parallel_games") or None), _num(w.get("games_total")),
            _num(w.get("games_per_s"), ".2f"),
            _num(w.get("nn_evals_per_s"), ",.0f"), _num(w.get("outbox")), f"{w.get('last_seen_s', 0):.1f} s",
        )
    parts = [head, table]
    if not workers:
        parts.append(Text("no workers have said hello yet", style="dim"))
    for w in workers:
        if w.get("state") == "Error" and w.get("error"):
            parts.append(Text(f"{w['worker_id']}: {w['error']}", style="red"))
    return Group(*parts)


def default_url(config: str | None) -> str:
    """The broker's HTTP address on this host, from the config's broker section (9100 without one)."""
    from azgo_core.config import ConfigError, load_settings

    try:
        broker = load_settings(config).broker if config and Path(config).exists() else None
    except ConfigError:
        broker = None
    port = broker.http_port if broker and broker.http_port else 9100
    host = broker.bind if broker and broker.bind not in ("0.0.0.0", "::") else "127.0.0.1"
    return f"http://{host}:{port}"


def main(args: argparse.Namespace) -> int:
    if not args.url:
        args.url = default_url(getattr(args, "config", None))
    # piped or captured output gets a wide table rather than rich's 80-column fallback
    console = Console() if sys.stdout.isatty() else Console(width=200)
    if args.watch is None:
        try:
            status = fetch_status(args.url)
        except StatusUnavailable as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(status, indent=2))
        else:
            console.print(render(status))
        return 0
    from rich.live import Live

    with Live(console=console, auto_refresh=False) as live:
        try:
            while True:
                try:
                    live.update(render(fetch_status(args.url)), refresh=True)
                except StatusUnavailable as e:
                    live.update(Text(f"{e} (retrying)", style="red"), refresh=True)
                time.sleep(args.watch)  # a display refresh period, not synchronisation
        except KeyboardInterrupt:
            return 0
