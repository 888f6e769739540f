"""A minimal, bounded GTP (Go Text Protocol, version 2) client for tests.

It drives an engine such as ``gnugo --mode gtp`` through its stdin/stdout.
Each command is sent with a numeric id; the engine answers
``=<id> <result>`` (success) or ``?<id> <message>`` (failure) followed by an
empty line.  Every read and write is bounded by a timeout, so a hung engine
fails the test instead of hanging it.  Commands may be pipelined:
:meth:`GtpClient.send_many` writes a batch and then reads the answers in order.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from collections.abc import Sequence

import pytest

from azgo_core import gtp


class GtpError(RuntimeError):
    """The engine answered ``?`` (failure), or the conversation broke."""

    def __init__(self, command: str, message: str):
        super().__init__(f"GTP command {command!r} failed: {message}")
        self.command = command
        self.message = message


class GtpTimeout(GtpError):
    """The engine did not answer within the timeout; it has been killed."""


class GtpClient:
    """One GTP engine subprocess.

    ``argv`` is the engine's command line; ``timeout`` bounds each command
    (for :meth:`send_many`, the whole batch) in seconds.  Use as a context
    manager, or call :meth:`close`.
    """

    def __init__(self, argv: Sequence[str], timeout: float = 10.0):
        self.argv = list(argv)
        self.timeout = float(timeout)
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
        )
        self._buf = bytearray()
        self._next_id = 1
        self._broken: str | None = None

    # -- public API -------------------------------------------------------

    def send(self, command: str, allow_failure: bool = False) -> str:
        """Send one command; return the result text (without ``=`` and id).

        A ``?`` answer raises :class:`GtpError` unless ``allow_failure``, in
        which case the failure message is returned prefixed with ``?``.
        """
        return self.send_many([command], allow_failure=allow_failure)[0]

    def send_many(self, commands: Sequence[str], allow_failure: bool = False) -> list[str]:
        """Pipeline ``commands``; return their results in order (see :meth:`send`)."""
        if self._broken is not None:
            raise GtpError(commands[0] if commands else "", f"engine unusable: {self._broken}")
        ids = []
        lines = []
        for command in commands:
            if "\n" in command or "\r" in command or not command.strip():
                raise ValueError(f"a GTP command is one non-empty line, got {command!r}")
            ids.append(self._next_id)
            lines.append(f"{self._next_id} {command}\n")
            self._next_id += 1
        deadline = time.monotonic() + self.timeout
        self._write("".join(lines).encode("ascii"), deadline, commands[0] if commands else "")
        results = []
        for command, cid in zip(commands, ids):
            status, rid, text = self._read_response(deadline, command)
            if rid != cid:
                self._fail(command, f"answer id {rid!r} does not match command id {cid}")
            if status == "?":
                if not allow_failure:
                    # Keep reading the remaining answers so the stream stays in sync.
                    for later_cmd, _ in list(zip(commands, ids))[len(results) + 1 :]:
                        self._read_response(deadline, later_cmd)
                    raise GtpError(command, text)
                results.append("?" + text)
            else:
                results.append(text)
        return results

    def close(self) -> None:
        """Ask the engine to quit; kill it if it does not exit promptly."""
        proc = self._proc
        if proc.poll() is None:
            try:
                if self._broken is None:
                    proc.stdin.write(b"quit\n")
                    proc.stdin.flush()
                proc.stdin.close()
                proc.wait(timeout=min(self.timeout, 5.0))
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait(timeout=5.0)
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self._broken = self._broken or "closed"

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def __enter__(self) -> GtpClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------

    def _fail(self, command: str, why: str, timeout: bool = False):
        self._broken = why
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=5.0)
        raise (GtpTimeout if timeout else GtpError)(command, why)

    def _write(self, data: bytes, deadline: float, command: str) -> None:
        """Write all of ``data``, draining the engine's output meanwhile.

        Draining avoids a deadlock where the engine blocks on a full stdout
        pipe while we block on a full stdin pipe.
        """
        out_fd = self._proc.stdout.fileno()
        in_fd = self._proc.stdin.fileno()
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail(command, f"timed out after {self.timeout}s writing to the engine", timeout=True)
            readable, writable, _ = select.select([out_fd], [in_fd], [], remaining)
            if readable:
                self._read_some(out_fd, command)
            if writable:
                try:
                    n = os.write(in_fd, view[:65536])
                except BrokenPipeError:
                    self._fail(command, f"engine exited (status {self._proc.poll()})")
                view = view[n:]

    def _read_some(self, fd: int, command: str) -> None:
        chunk = os.read(fd, 65536)
        if not chunk:
            self._fail(command, f"engine closed its output (status {self._proc.poll()})")
        self._buf += chunk.replace(b"\r", b"")

    def _read_response(self, deadline: float, command: str) -> tuple[str, int | None, str]:
        """Next answer as (status '=' or '?', id or None, text)."""
        fd = self._proc.stdout.fileno()
        while True:
            try:
                answer = gtp.take_response(self._buf)
            except gtp.GtpError as e:  # neither "=" nor "?"
                self._fail(command, str(e))
            if answer is not None:
                return answer
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail(command, f"no answer within {self.timeout}s", timeout=True)
            readable, _, _ = select.select([fd], [], [], remaining)
            if readable:
                self._read_some(fd, command)


# --- a game against GNU Go, for the GTP tests ---------------------------------------------------
def gnugo_path() -> str:
    """GNU Go from $AZGO_GNUGO (set by `make test`: then it must exist), else from PATH or /usr/games."""
    configured = os.environ.get("AZGO_GNUGO")
    if configured:
        assert os.access(configured, os.X_OK), f"AZGO_GNUGO={configured} is not an executable"
        return configured
    found = shutil.which("gnugo") or ("/usr/games/gnugo" if os.access("/usr/games/gnugo", os.X_OK) else None)
    if not found:
        pytest.skip("GNU Go not installed (make test installs it)")
    return found


def play_against_gnugo(ours, size: int, max_moves: int, our_colour: str) -> list[str]:
    """Alternate genmove/play between our engine and GNU Go; returns the moves as GTP vertices.

    Every move of ours must be accepted by GNU Go (positional superko, no suicide: the same
    rules), every move of GNU Go's by us; at the end both must see the same stones.
    """
    gnugo = GtpClient([gnugo_path(), "--mode", "gtp", "--level", "1", "--positional-superko"], timeout=60)
    with gnugo:
        for side in (ours, gnugo):
            side.send(f"boardsize {size}")
            side.send("clear_board")
            side.send("komi 7.5")
        players = {our_colour: ours, "bw".replace(our_colour, ""): gnugo}
        moves: list[str] = []
        for i in range(max_moves):
            colour = "bw"[i % 2]
            mover, other = players[colour], players["bw".replace(colour, "")]
            vertex = mover.send(f"genmove {colour}").lower()
            moves.append(vertex)
            if vertex == "resign":
                break
            answer = other.send(f"play {colour} {vertex}", allow_failure=True)
            assert answer == "", f"move {i + 1} {colour} {vertex} refused: {answer} after {moves}"
            if moves[-2:] == ["pass", "pass"]:
                break
        for colour in ("black", "white"):
            theirs = sorted(gnugo.send(f"list_stones {colour}").upper().split())
            assert sorted(ours.send(f"list_stones {colour}").split()) == theirs, colour
    return moves
