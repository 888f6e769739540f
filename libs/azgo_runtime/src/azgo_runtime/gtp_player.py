"""A GTP engine in a subprocess as a match player (``azgo_core.match``): GNU Go, or any GTP command.

``GtpProcess`` is the conversation: one command line out, one answer back (``=`` success,
``?`` failure, then an empty line), each bounded by a timeout so a hung engine fails the
match instead of hanging it. ``GtpPlayer`` maps the match calls onto GTP commands:

=====================  ===============================================
match call             GTP
=====================  ===============================================
``new_game(N, komi,    ``boardsize N``, ``clear_board``, ``komi K``, and the engine's
  seed)``              seed command when it has one (GNU Go: ``set_random_seed S``)
``genmove(position)``  ``genmove b|w`` -> a vertex, ``pass`` or ``resign``
``play(colour, m)``    ``play b|w VERTEX`` (the opponent's move)
``close()``            ``quit``
=====================  ===============================================

The engine keeps its own board; the referee's position is only used for the colour to
move. An engine that refuses a legal move or answers nonsense raises ``GtpEngineError``: the
game cannot go on, so the caller abandons it.
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import time
from collections.abc import Sequence

from azgo_core import coords
from azgo_core.gtp import RESIGN, GtpError, take_response
from azgo_core.position import BLACK, Position

log = logging.getLogger("azgo.gtp_player")

DEFAULT_TIMEOUT = 120.0  # seconds for one answer (a strong engine thinking on 19x19 can be slow)


class GtpEngineError(RuntimeError):
    """The engine failed a command, died, timed out or answered something unreadable."""


class GtpProcess:
    """One GTP engine subprocess (``argv``), spoken to one command at a time."""

    def __init__(self, argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT):
        self.argv = list(argv)
        self.timeout = timeout
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, bufsize=0)
        except OSError as e:
            raise GtpEngineError(f"cannot start GTP engine {self.argv[0]!r}: {e.strerror or e}") from None
        self._buf = bytearray()

    def send(self, command: str) -> str:
        """The answer's text; ``GtpEngineError`` for a ``?`` answer, a dead engine or a timeout."""
        if self.proc.poll() is not None:
            raise GtpEngineError(f"GTP engine {self.argv[0]!r} has exited (status {self.proc.returncode})")
        try:
            self.proc.stdin.write(command.encode("ascii") + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise GtpEngineError(f"GTP engine {self.argv[0]!r} exited before {command!r}") from None
        status, text = self._answer(command, time.monotonic() + self.timeout)
        if status == "?":
            raise GtpEngineError(f"GTP engine {self.argv[0]!r} refused {command!r}: {text}")
        return text

    def _answer(self, command: str, deadline: float) -> tuple[str, str]:
        fd = self.proc.stdout.fileno()
        while True:
            try:
                answer = take_response(self._buf)
            except GtpError as e:
                raise GtpEngineError(f"GTP engine {self.argv[0]!r} answered {command!r}: {e}") from None
            if answer is not None:
                return answer[0], answer[2]
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise GtpEngineError(f"GTP engine {self.argv[0]!r} did not answer {command!r} within {self.timeout:g} s")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise GtpEngineError(f"GTP engine {self.argv[0]!r} closed its output during {command!r} "
                                         f"(status {self.proc.poll()})")
                self._buf += chunk.replace(b"\r", b"")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def close(self) -> None:
        """``quit``, then wait a little; kill an engine that lingers."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.flush()
                self.proc.stdin.close()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


class GtpPlayer:
    """A match player backed by a GTP engine process; ``name`` defaults to the engine's ``name``."""

    def __init__(self, argv: Sequence[str], name: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 seed_command: str | None = None):
        self.seed_command = seed_command
        """The engine's GTP command that seeds its choices (GNU Go: set_random_seed), sent per game."""
        self.engine = GtpProcess(argv, timeout)
        try:
            self.name = name or self.engine.send("name").split()[0]
        except (GtpEngineError, IndexError):
            self.engine.close()
            raise
        self.size = 0

    def new_game(self, size: int, komi: float, seed: int = 0) -> None:
        self.size = size
        self.engine.send(f"boardsize {size}")
        self.engine.send("clear_board")
        self.engine.send(f"komi {komi:g}")
        if self.seed_command:
            self.engine.send(f"{self.seed_command} {seed}")

    def genmove(self, position: Position) -> int:
        colour = "b" if position.to_play == BLACK else "w"
        answer = self.engine.send(f"genmove {colour}")
        if answer.lower() == "resign":
            return RESIGN
        try:
            return coords.from_gtp(self.size, answer)
        except coords.CoordinateError:
            raise GtpEngineError(f"GTP engine {self.name} answered genmove with {answer!r}, not a vertex") from None

    def play(self, colour: int, move: int) -> None:
        self.engine.send(f"play {'b' if colour == BLACK else 'w'} {coords.to_gtp(self.size, move)}")

    def close(self) -> None:
        self.engine.close()
