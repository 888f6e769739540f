"""Cross-check azgo's rules against GNU Go over GTP, on random games.

Each random game is played in lockstep in azgo and in two GNU Go processes: one with its
default rules (simple ko) and one with ``--positional-superko``. Before every move all
three judge the legality of every point (GNU Go's ``all_legal``) and of chosen candidates
one by one (``is_legal``): the move about to be played, a few other moves azgo thinks
legal, every empty point azgo thinks illegal (suicide or superko) and a couple of occupied
points. The chosen move is then played everywhere and the stones compared
(``list_stones`` against ``Position.stones()``).

azgo must agree exactly with GNU Go under positional superko. Default GNU Go forbids only
the immediate ko recapture, so a move azgo refuses as 'superko' may be legal there: each
such case is counted, recorded and printed by ``test_crosscheck_summary``; any other
disagreement fails with a reproducer (board size and the GTP move list).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

import numpy as np
import pytest
from gtp_client import GtpClient, GtpError, GtpTimeout
from test_rules import TRIPLE_KO

from azgo_core import coords
from azgo_core.position import BLACK, EMPTY, WHITE, IllegalMove, Position


def _find_gnugo() -> str | None:
    """$AZGO_GNUGO (set by `make test`: then it must exist), else /usr/games/gnugo or PATH."""
    configured = os.environ.get("AZGO_GNUGO")
    if configured:
        assert os.access(configured, os.X_OK), f"AZGO_GNUGO={configured} is not an executable"
        return configured
    return "/usr/games/gnugo" if os.access("/usr/games/gnugo", os.X_OK) else shutil.which("gnugo")


GNUGO = _find_gnugo()
pytestmark = pytest.mark.skipif(GNUGO is None, reason="GNU Go is not installed (make test installs it)")

GAMES_PER_SIZE = {9: 150, 7: 150}
PASS_PROBABILITY = 0.01  # occasional voluntary passes, so that passes mid-game are exercised
GTP_TIMEOUT_S = 20.0
COLOUR_NAME = {BLACK: "black", WHITE: "white"}


def gnugo(size: int, *flags: str) -> GtpClient:
    client = GtpClient([GNUGO, "--mode", "gtp", "--boardsize", str(size), "--level", "0", *flags], GTP_TIMEOUT_S)
    client.send(f"boardsize {size}")
    return client


@pytest.fixture(scope="module")
def engines():
    """Lazily started GNU Go processes, one per (board size, flags); all closed at the end."""
    started: dict[tuple, GtpClient] = {}

    def get(size: int, *flags: str) -> GtpClient:
        key = (size, flags)
        if key not in started:
            started[key] = gnugo(size, *flags)
        return started[key]

    yield get
    for client in started.values():
        client.close()


def setup_stones(client: GtpClient, pos: Position) -> None:
    """Put ``pos``'s stones on GNU Go's board with plays (no captures occur)."""
    n = pos.size
    st = pos.stones()
    cmds = ["clear_board"]
    for colour in (BLACK, WHITE):
        cmds += [f"play {COLOUR_NAME[colour]} {coords.to_gtp(n, m)}" for m in np.flatnonzero(st == colour)]
    client.send_many(cmds)


def gnugo_stones(client: GtpClient, size: int) -> np.ndarray:
    black, white = client.send_many(["list_stones black", "list_stones white"])
    return stones_from_lists(size, black, white)


def stones_from_lists(size: int, black: str, white: str) -> np.ndarray:
    out = np.zeros(size * size, dtype=np.int8)
    for colour, text in ((BLACK, black), (WHITE, white)):
        for vertex in text.split():
            out[coords.from_gtp(size, vertex)] = colour
    return out


# --- the GTP helper itself --------------------------------------------------------------


def test_gtp_client_failure_pipelining_and_close():
    with gnugo(5) as client:
        assert client.send("play black C3") == ""
        with pytest.raises(GtpError, match="illegal move"):
            client.send("play white C3")
        assert client.send("play white C3", allow_failure=True).startswith("?")
        # A failure in the middle of a batch leaves the stream in sync.
        with pytest.raises(GtpError):
            client.send_many(["play white C3", "is_legal white C3"])
        assert client.send_many(["is_legal white C3", "is_legal white D3", "list_stones black"]) == ["0", "1", "C3"]
        with pytest.raises(ValueError):
            client.send("name\nquit")
    assert client.returncode == 0  # answered quit and exited by itself


def test_gtp_client_times_out_on_a_silent_engine():
    # Reads commands, never answers, and keeps its stdout open (through fd 3).
    client = GtpClient(["sh", "-c", "exec 3>&1; exec cat > /dev/null"], timeout=0.5)
    try:
        with pytest.raises(GtpTimeout, match="no answer"):
            client.send("name")
        assert client.returncode is not None  # killed, not left running
        with pytest.raises(GtpError, match="unusable"):
            client.send("name")
    finally:
        client.close()


# --- hand-made positions: ko, superko and suicide in both engines -----------------------

KO = """
.XO..
XO.O.
.XO..
.....
.....
"""


def test_gnugo_refuses_simple_ko_recapture_like_us(engines):
    pos = Position.from_ascii(KO)
    gg = engines(5)
    setup_stones(gg, pos)
    take = coords.from_gtp(5, "C4")
    pos.play(take)
    gg.send("play black C4")
    assert np.array_equal(gnugo_stones(gg, 5), pos.stones())
    # The immediate retake at B4: GNU Go refuses it in both is_legal and play.
    assert gg.send("is_legal white B4") == "0"
    assert gg.send("play white B4", allow_failure=True).startswith("?")
    assert "B4" not in gg.send("all_legal white").split()
    with pytest.raises(IllegalMove, match="superko"):
        pos.play(coords.from_gtp(5, "B4"))
    # After an exchange elsewhere both allow it.
    for vertex in ("E1", "A1"):
        pos.play(coords.from_gtp(5, vertex))
        gg.send(f"play {COLOUR_NAME[3 - pos.to_play]} {vertex}")
    assert gg.send("is_legal white B4") == "1" and pos.legal(coords.from_gtp(5, "B4"))


def test_triple_ko_superko_agrees_with_gnugo_positional_superko(engines):
    cycle = ["C8", "C4", "H8", "B8", "B4"]
    results = {}
    for flags in ((), ("--positional-superko",)):
        gg = engines(9, *flags)
        pos = Position.from_ascii(TRIPLE_KO)
        setup_stones(gg, pos)
        for vertex in cycle:
            assert gg.send(f"play {COLOUR_NAME[pos.to_play]} {vertex}") == ""
            pos.play(coords.from_gtp(9, vertex))
        assert np.array_equal(gnugo_stones(gg, 9), pos.stones())
        results[flags] = gg.send("is_legal white G8")
    assert not pos.legal(coords.from_gtp(9, "G8"))
    assert results == {(): "1", ("--positional-superko",): "0"}  # simple ko only vs superko


def test_suicide_agrees_with_gnugo(engines):
    pos = Position.from_ascii(".OX..\nOX...\nX....\n.....\n.....", to_play=WHITE)
    gg = engines(5)
    setup_stones(gg, pos)
    assert not pos.legal(0) and gg.send("is_legal white A5") == "0"  # three-stone suicide
    assert gg.send("play white A5", allow_failure=True).startswith("?")
    pos.play(coords.pass_move(5))
    assert pos.legal(0) and gg.send("is_legal black A5") == "1"  # captures: legal
    assert pos.play(0) == 2
    gg.send("play black A5")
    assert np.array_equal(gnugo_stones(gg, 5), pos.stones())


# --- random games -----------------------------------------------------------------------


@dataclass
class Tally:
    games: int = 0
    moves: int = 0
    passes: int = 0
    captures: int = 0
    ended_by_passes: int = 0
    is_legal_checks: int = 0
    illegal_probes: int = 0  # is_legal asked for moves we consider illegal
    points_compared: int = 0  # all_legal point verdicts compared
    superko_only: list = field(default_factory=list)  # (size, GTP moves so far, 'colour vertex')


TALLY = Tally()


def neighbours_table(size: int) -> list[list[int]]:
    table = []
    for m in range(size * size):
        r, c = divmod(m, size)
        table.append(
            [
                (r + dr) * size + c + dc
                for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
                if 0 <= r + dr < size and 0 <= c + dc < size
            ]
        )
    return table


def is_own_eye(stones: np.ndarray, move: int, colour: int, nbrs: list[list[int]]) -> bool:
    """A single empty point all of whose neighbours are ``colour``: filling it is pointless."""
    return all(stones[x] == colour for x in nbrs[move])


def reproducer(size: int, moves: list[int], pos: Position, detail: str) -> str:
    colours = "BW"
    listing = " ".join(f"{colours[i % 2]}:{coords.to_gtp(size, m)}" for i, m in enumerate(moves))
    return (
        f"{detail}\nboard {size}x{size}, empty start, black first; moves so far ({len(moves)}):\n"
        f"{listing}\nposition now ({COLOUR_NAME[pos.to_play]} to play):\n{pos.to_ascii()}"
    )


def refusal_reason(pos: Position, move: int) -> str:
    try:
        pos.copy().play(move)
    except IllegalMove as e:
        return str(e)
    return "legal"


@dataclass
class Answers:
    """One GNU Go's answers for one move: legal points, probe verdicts, play, stones."""

    legal: np.ndarray  # bool [N*N], from all_legal
    verdicts: list[str]  # is_legal answers for the probes
    play: str
    stones: np.ndarray  # int8 [N*N] after the move


def ask(client: GtpClient, size: int, name: str, probes: list[int], move: int) -> Answers:
    cmds = [f"all_legal {name}"] + [f"is_legal {name} {coords.to_gtp(size, m)}" for m in probes]
    cmds += [f"play {name} {coords.to_gtp(size, move)}", "list_stones black", "list_stones white"]
    answers = client.send_many(cmds, allow_failure=True)
    if answers[0].startswith("?"):
        pytest.fail(f"GNU Go all_legal failed: {answers[0]}")
    legal = np.zeros(size * size, dtype=bool)
    for v in answers[0].split():
        legal[coords.from_gtp(size, v)] = True
    k = 1 + len(probes)
    return Answers(legal, answers[1:k], answers[k], stones_from_lists(size, answers[k + 1], answers[k + 2]))


def play_random_game(simple: GtpClient, psk: GtpClient, size: int, rng: np.random.Generator, nbrs) -> None:
    """One random game, checked move by move against GNU Go with simple ko (``simple``) and
    with positional superko (``psk``)."""
    n2 = size * size
    pos = Position(size=size)  # move cap 2*N*N
    simple.send("clear_board")
    psk.send("clear_board")
    while not pos.is_over:
        colour = pos.to_play
        name = COLOUR_NAME[colour]
        mask = pos.legal_mask()
        st = pos.stones()
        assert mask[n2], "pass must be legal while the game is not over"
        ours_legal = np.flatnonzero(mask[:n2])
        candidates = [m for m in ours_legal if not is_own_eye(st, m, colour, nbrs)]
        if not candidates or rng.random() < PASS_PROBABILITY:
            move = n2
        else:
            move = int(rng.choice(candidates))

        # Moves to ask about one by one: the chosen one, three other legal ones, every
        # empty point we call illegal, two occupied points.
        others = [m for m in ours_legal if m != move]
        probes = [move] if move != n2 else []
        probes += [int(m) for m in rng.choice(others, size=min(3, len(others)), replace=False)] if others else []
        probes += [int(m) for m in np.flatnonzero((st == EMPTY) & ~mask[:n2])]
        occupied = np.flatnonzero(st != EMPTY)
        if len(occupied):
            probes += [int(m) for m in rng.choice(occupied, size=min(2, len(occupied)), replace=False)]

        moves_before = list(pos.moves)

        def fail(detail: str, moves: list[int] = moves_before) -> None:
            pytest.fail(reproducer(size, moves, pos, detail))

        a_simple = ask(simple, size, name, probes, move)
        a_psk = ask(psk, size, name, probes, move)
        TALLY.points_compared += 2 * n2
        TALLY.is_legal_checks += 2 * len(probes)
        TALLY.illegal_probes += 2 * sum(1 for m in probes if not mask[m])
        for label, a in (("GNU Go", a_simple), ("GNU Go --positional-superko", a_psk)):
            for m, verdict in zip(probes, a.verdicts):
                v = coords.to_gtp(size, m)
                if verdict not in ("0", "1") or (verdict == "1") != a.legal[m]:
                    fail(f"{label} is_legal {v} = {verdict!r} but its all_legal says {bool(a.legal[m])}")
                if (verdict == "1") != bool(mask[m]) and label != "GNU Go":
                    fail(f"{name} {v}: azgo legal={bool(mask[m])}, {label} is_legal={verdict}")

        # Positional superko in both engines: exact agreement on every point.
        for m in np.flatnonzero(mask[:n2] != a_psk.legal):
            fail(
                f"{name} {coords.to_gtp(size, int(m))}: azgo legal={bool(mask[m])}, "
                f"GNU Go --positional-superko legal={bool(a_psk.legal[m])} ({refusal_reason(pos, int(m))})"
            )
        # Simple-ko GNU Go: it may allow only what positional superko forbids.
        for m in np.flatnonzero(mask[:n2] != a_simple.legal):
            m = int(m)
            v = coords.to_gtp(size, m)
            reason = refusal_reason(pos, m)
            if mask[m] or "superko" not in reason:
                fail(f"{name} {v}: azgo says {reason}, GNU Go (simple ko) legal={bool(a_simple.legal[m])}")
            TALLY.superko_only.append((size, [coords.to_gtp(size, x) for x in moves_before], f"{name} {v}"))

        captured = pos.play(move)
        vertex = coords.to_gtp(size, move)
        for label, a in (("GNU Go", a_simple), ("GNU Go --positional-superko", a_psk)):
            if a.play.startswith("?"):
                fail(f"{label} refused play {name} {vertex}: {a.play}")
            if not np.array_equal(a.stones, pos.stones()):
                diff = [coords.to_gtp(size, int(x)) for x in np.flatnonzero(a.stones != pos.stones())]
                fail(f"after {name} {vertex} the stones differ from {label}'s at {diff}:\n{pos.to_ascii()}")
        TALLY.moves += 1
        TALLY.passes += move == n2
        TALLY.captures += captured or 0
    TALLY.games += 1
    TALLY.ended_by_passes += pos.passes >= 2
    assert pos.n_moves <= 2 * n2


@pytest.mark.parametrize("size", sorted(GAMES_PER_SIZE, reverse=True))
def test_random_games_agree_with_gnugo(size, engines):
    rng = np.random.default_rng(1000 + size)
    nbrs = neighbours_table(size)
    simple, psk = engines(size), engines(size, "--positional-superko")
    before = TALLY.games
    for _ in range(GAMES_PER_SIZE[size]):
        play_random_game(simple, psk, size, rng, nbrs)
    assert TALLY.games - before == GAMES_PER_SIZE[size]


def test_crosscheck_summary(capsys, record_property):
    """Prints the totals (even under -q) and checks the random games did real work."""
    if TALLY.games == 0:
        pytest.skip("the random-game cross-checks did not run")
    per_size = {n: sum(1 for k in TALLY.superko_only if k[0] == n) for n in GAMES_PER_SIZE}
    lines = [
        f"GNU Go cross-check: {TALLY.games} games, {TALLY.moves} moves ({TALLY.passes} passes, "
        f"{TALLY.captures} stones captured, {TALLY.ended_by_passes} games ended by two passes); "
        f"is_legal checks {TALLY.is_legal_checks} ({TALLY.illegal_probes} on moves azgo calls illegal); "
        f"all_legal point verdicts {TALLY.points_compared}; "
        f"superko-only disagreements with simple-ko GNU Go: {len(TALLY.superko_only)} {per_size} "
        f"(every one refused by GNU Go --positional-superko too)"
    ]
    for size, moves, what in TALLY.superko_only:
        lines.append(f"  superko-only {size}x{size}: {what} after {len(moves)} moves: {' '.join(moves)}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    record_property("gnugo_crosscheck", lines[0])
    record_property("superko_only", repr(TALLY.superko_only))
    assert TALLY.games >= 300
    assert TALLY.illegal_probes > 0 and TALLY.captures > 0
