"""A GTP version 2 engine: the protocol loop and one small handler per command.

The Go Text Protocol (https://www.lysator.liu.se/~gunnar/gtp/) is line based. The
controller sends commands and the engine answers each with exactly one response:

====================  ==========================================================
text                  meaning
====================  ==========================================================
``[id] name args``    a command; ``id`` (optional) is a non-negative integer
``=[id] result\\n\\n``  success; multi-line results have no empty lines inside
``?[id] error\\n\\n``   failure; the error strings are the spec's ("illegal move",
                      "syntax error", "unacceptable size", "cannot undo", ...)
====================  ==========================================================

Before parsing, every line is cleaned as the spec says: control characters other than
HT and LF are removed, HT becomes a space, ``#`` starts a comment that runs to the end
of the line, and lines left empty are skipped.

The engine keeps a ``Position`` (rules, superko, scoring) and a stack of earlier
positions for ``undo``; it asks a *player* for moves. A player is any object with
``genmove(position) -> int`` (a flat move, ``coords``: pass = N*N, or ``RESIGN``), made
for a board size by a *player factory* ``factory(size) -> player`` that raises
``ValueError`` for a size it cannot play (a network trained on another size). Only
the protocol goes to stdout; diagnostics go to the ``azgo_core.gtp`` logger.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TextIO

from . import __version__, coords
from .position import BLACK, WHITE, IllegalMove, Position

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 2
ENGINE_NAME = "azgo"
RESIGN = -1  # what a player returns to resign; never played on the board
DEFAULT_SIZE = 9
DEFAULT_KOMI = 7.5
# GTP games end when the controller says so; the cap only stops runaway games, so it is
# looser than self-play's 2*N*N (out-of-turn moves also spend moves on inserted passes).
MOVE_CAP_PER_POINT = 4

COLOURS = {"b": BLACK, "black": BLACK, "w": WHITE, "white": WHITE}
COLOUR_NAMES = {BLACK: "black", WHITE: "white"}


class Player(Protocol):
    def genmove(self, position: Position) -> int: ...


PlayerFactory = Callable[[int], Player]


class GtpError(Exception):
    """A command failed; the message is the error string sent after ``?``."""


@dataclass(frozen=True)
class Command:
    id: int | None
    name: str
    args: list[str]


def clean_line(line: str) -> str:
    """Apply the spec's preprocessing to one line; the result may be empty."""
    line = line.split("#", 1)[0]
    kept = (" " if ch == "\t" else ch for ch in line if ch == "\t" or (ord(ch) >= 32 and ord(ch) != 127))
    return "".join(kept).strip()


def parse_command(line: str) -> Command | None:
    """The command on a line, or None for a line that is empty after cleaning."""
    words = clean_line(line).split()
    if not words:
        return None
    cmd_id = None
    if words[0].isdigit():
        cmd_id = int(words.pop(0))
    name = words.pop(0) if words else ""
    return Command(cmd_id, name, words)


def format_response(cmd_id: int | None, ok: bool, text: str = "") -> str:
    """One response: ``=id text`` or ``?id text``, then the empty line that ends it."""
    head = ("=" if ok else "?") + ("" if cmd_id is None else str(cmd_id))
    body = "\n".join(line for line in text.splitlines() if line.strip())  # no empty lines inside
    if text.startswith("\n"):  # a diagram starts on its own line, as GNU Go's showboard does
        body = "\n" + body
    return f"{head} {body}\n\n"  # GNU Go's form: the space stays when the result is empty


def take_response(buf: bytearray) -> tuple[str, int | None, str] | None:
    """The next whole response an engine wrote into ``buf`` (its stdout as read so far, carriage
    returns removed), taken out of ``buf``: (status ``=`` or ``?``, id or None, text); None while it
    is incomplete. Stray empty lines between responses are skipped. Raises ``GtpError`` for a
    response that starts with neither ``=`` nor ``?``."""
    while buf.startswith(b"\n"):
        del buf[:1]
    end = buf.find(b"\n\n")
    if end < 0:
        return None
    raw = bytes(buf[:end]).decode("utf-8", "replace")
    del buf[: end + 2]
    match = re.match(r"([=?])(\d*)(.*)", raw, re.S)
    if match is None:
        raise GtpError(f"malformed response {raw[:80]!r}")
    return match[1], int(match[2]) if match[2] else None, match[3].strip()


def parse_colour(word: str) -> int:
    try:
        return COLOURS[word.lower()]
    except KeyError:
        raise GtpError("syntax error") from None


def _expect(args: list[str], n: int) -> list[str]:
    if len(args) != n:
        raise GtpError("syntax error")
    return args


class GtpEngine:
    """GTP command handlers over a ``Position`` and a player.

    Handlers are the methods ``cmd_<name>(args) -> str``; each returns the response text
    or raises ``GtpError`` with the spec's error string. Give either ``player`` (used for
    every board size) or ``player_factory`` (called with the board size, lazily).
    """

    def __init__(
        self,
        *,
        player: Player | None = None,
        player_factory: PlayerFactory | None = None,
        size: int = DEFAULT_SIZE,
        komi: float = DEFAULT_KOMI,
    ):
        if (player is None) == (player_factory is None):
            raise ValueError("GtpEngine needs exactly one of player= or player_factory=")
        self._factory: PlayerFactory = player_factory or (lambda _size: player)
        self._player: Player | None = None
        self.size = coords.check_size(size)
        self.komi = float(komi)
        self.done = False
        self.new_game()

    # --- state --------------------------------------------------------------------------
    def new_game(self) -> None:
        self.position = Position(self.size, self.komi, move_cap=MOVE_CAP_PER_POINT * self.size * self.size)
        self.undo_stack: list[Position] = []

    def player(self) -> Player:
        if self._player is None:
            self._player = self._factory(self.size)
        return self._player

    def _play(self, colour: int, move: int) -> None:
        """Play ``move`` for ``colour``, passing for the other side first if it is not its turn.

        GTP allows consecutive moves of one colour (handicap stones, setups); a pass keeps
        the superko history and ``undo`` intact, where rebuilding the position would not.
        One case it cannot serve: a colour that passed and then moves again, since the
        inserted pass is the second in a row and ends the game ("illegal move").
        """
        before = self.position.copy()
        try:
            if self.position.to_play != colour:
                self.position.play(coords.pass_move(self.size))
            self.position.play(move)
        except IllegalMove as e:
            self.position = before
            log.info("refused %s %s: %s", COLOUR_NAMES[colour], coords.to_gtp(self.size, move), e.reason)
            raise GtpError("illegal move") from None
        self.undo_stack.append(before)

    # --- dispatch -----------------------------------------------------------------------
    def commands(self) -> list[str]:
        return sorted(name[4:] for name in dir(self) if name.startswith("cmd_"))

    def handle(self, command: Command) -> str:
        """The full response (terminated by its empty line) to one command."""
        handler = getattr(self, "cmd_" + command.name, None) if command.name.isidentifier() else None
        if handler is None:
            return format_response(command.id, False, "unknown command")
        try:
            return format_response(command.id, True, handler(command.args))
        except GtpError as e:
            return format_response(command.id, False, str(e))
        except Exception as e:  # a bug must not kill the controller's game
            log.exception("command %r failed", command.name)
            return format_response(command.id, False, f"internal error: {type(e).__name__}: {e}")

    def run(self, stdin: Iterable[str], stdout: TextIO) -> None:
        """Answer commands from ``stdin`` until ``quit`` or end of input."""
        for line in stdin:
            command = parse_command(line)
            if command is None:
                continue
            stdout.write(self.handle(command))
            stdout.flush()
            if self.done:
                break

    # --- administrative commands -------------------------------------------------------
    def cmd_protocol_version(self, args: list[str]) -> str:
        return str(PROTOCOL_VERSION)

    def cmd_name(self, args: list[str]) -> str:
        return ENGINE_NAME

    def cmd_version(self, args: list[str]) -> str:
        return __version__

    def cmd_known_command(self, args: list[str]) -> str:
        (name,) = _expect(args, 1)
        return "true" if name in self.commands() else "false"

    def cmd_list_commands(self, args: list[str]) -> str:
        return "\n".join(self.commands())

    def cmd_quit(self, args: list[str]) -> str:
        self.done = True
        return ""

    # --- setup ---------------------------------------------------------------------------
    def cmd_boardsize(self, args: list[str]) -> str:
        (word,) = _expect(args, 1)
        try:
            size = int(word)
        except ValueError:
            raise GtpError("syntax error") from None
        if not coords.MIN_SIZE <= size <= coords.MAX_SIZE:
            raise GtpError("unacceptable size")
        if size != self.size:
            try:
                player = self._factory(size)
            except ValueError as e:
                log.warning("boardsize %d refused: %s", size, e)
                raise GtpError("unacceptable size") from None
            self.size, self._player = size, player
        self.new_game()
        return ""

    def cmd_clear_board(self, args: list[str]) -> str:
        self.new_game()
        return ""

    def cmd_komi(self, args: list[str]) -> str:
        (word,) = _expect(args, 1)
        try:
            komi = float(word)
        except ValueError:
            raise GtpError("syntax error") from None
        if komi != komi or komi in (float("inf"), float("-inf")):
            raise GtpError("syntax error")
        self.komi = komi
        self.position.komi = komi  # scoring reads it at the end; the game goes on
        return ""

    # --- play ----------------------------------------------------------------------------
    def cmd_play(self, args: list[str]) -> str:
        colour_word, vertex = _expect(args, 2)
        colour = parse_colour(colour_word)
        try:
            move = coords.from_gtp(self.size, vertex)
        except coords.CoordinateError:
            raise GtpError("syntax error") from None
        self._play(colour, move)
        return ""

    def cmd_genmove(self, args: list[str]) -> str:
        (colour_word,) = _expect(args, 1)
        colour = parse_colour(colour_word)
        if self.position.is_over:
            return "pass"  # nothing left to play; the board is not changed
        probe = self.position.copy()
        if probe.to_play != colour:
            probe.play(coords.pass_move(self.size))
        move = self.player().genmove(probe)
        if move == RESIGN:
            return "resign"
        if not probe.legal(move):
            raise GtpError(f"internal error: player chose illegal move {move}")
        self._play(colour, move)
        return coords.to_gtp(self.size, move)

    def cmd_undo(self, args: list[str]) -> str:
        if not self.undo_stack:
            raise GtpError("cannot undo")
        self.position = self.undo_stack.pop()
        return ""

    # --- information ---------------------------------------------------------------------
    def cmd_final_score(self, args: list[str]) -> str:
        return self.position.result_string()

    def cmd_list_stones(self, args: list[str]) -> str:
        (colour_word,) = _expect(args, 1)
        colour = parse_colour(colour_word)
        points = (self.position.stones() == colour).nonzero()[0]
        return " ".join(coords.to_gtp(self.size, int(p)) for p in points)

    def cmd_showboard(self, args: list[str]) -> str:
        n, p = self.size, self.position
        stones = p.stones()
        marks = {BLACK: "X", WHITE: "O"}
        columns = "   " + " ".join(coords.GTP_COLUMNS[:n])
        rows = []
        for row in range(n):
            label = coords.to_gtp(n, coords.to_flat(n, row, 0))[1:]
            cells = " ".join(marks.get(int(stones[row * n + col]), ".") for col in range(n))
            rows.append(f"{label:>2} {cells} {label}")
        status = f"{COLOUR_NAMES[p.to_play]} to play, move {p.n_moves}, komi {p.komi:g}"
        return "\n".join(["", columns, *rows, columns, status])

    # --- time (accepted and ignored: the player searches a fixed number of visits) -------
    def cmd_time_settings(self, args: list[str]) -> str:
        _expect(args, 3)
        return ""

    def cmd_time_left(self, args: list[str]) -> str:
        _expect(args, 3)
        return ""
