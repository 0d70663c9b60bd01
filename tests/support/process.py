"""One child process as the test wrappers (camera simulator, mosquitto, the agent) need it.

Each start runs the command in a session of its own (a Ctrl+C in the terminal reaches pytest only); a
thread pumps one output stream line by line into a log file and into memory, where ``wait_line`` finds a
line without polling. The lines of every start are kept, so a position (``mark``) taken before a restart
still means something after it. ``stop`` is SIGTERM, then SIGKILL when the process does not exit in time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Literal

LineMatch = str | re.Pattern[str] | Callable[[str], bool]


def _matcher(match: LineMatch) -> tuple[Callable[[str], bool], str]:
    if callable(match) and not isinstance(match, re.Pattern):
        return match, getattr(match, "__name__", "a line")
    rx = re.compile(match) if isinstance(match, str) else match
    return (lambda line: rx.search(line) is not None), repr(rx.pattern)


class ManagedProcess:
    """``argv`` as a child process, startable again after it ended.

    ``pump`` is the stream kept (``"stdout"``, ``"stderr"`` or ``"both"``, stderr merged into stdout);
    its lines go to ``log_path`` (appended) and to memory. ``side_log`` receives the other stream
    (appended), else it is discarded. With ``commands=True`` the process reads commands on its stdin
    (``send_line``); otherwise its stdin is /dev/null.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        log_path: Path | None = None,
        pump: Literal["stdout", "stderr", "both"] = "both",
        side_log: Path | None = None,
        cwd: Path | None = None,
        commands: bool = False,
    ) -> None:
        self.argv = list(argv)
        self.commands = commands
        self.name = name
        self.log_path = log_path
        self.pump = pump
        self.side_log = side_log
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._cond = threading.Condition()
        self._lines: list[str] = []
        self._pump: threading.Thread | None = None

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    # ------------------------------------------------------------------ start and stop
    def start(self, env: dict[str, str] | None = None) -> ManagedProcess:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        side: IO[bytes] | int = open(self.side_log, "ab") if self.side_log else subprocess.DEVNULL  # noqa: SIM115
        streams: dict[str, IO[bytes] | int] = {"stdout": subprocess.PIPE, "stderr": side}
        if self.pump == "stderr":
            streams = {"stdout": side, "stderr": subprocess.PIPE}
        elif self.pump == "both":
            streams = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
        try:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.PIPE if self.commands else subprocess.DEVNULL,
                start_new_session=True,
                **streams,  # type: ignore[call-overload]
            )
        finally:
            if not isinstance(side, int):
                side.close()
        self._pump = threading.Thread(target=self._pump_lines, args=(self.proc,), name=f"{self.name}-output",
                                      daemon=True)
        self._pump.start()
        return self

    def _pump_lines(self, proc: subprocess.Popen[bytes]) -> None:
        stream = proc.stderr if self.pump == "stderr" else proc.stdout
        assert stream is not None
        log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        try:
            for raw in stream:
                if log is not None:
                    log.write(raw)
                    log.flush()
                with self._cond:
                    self._lines.append(raw.decode(errors="replace"))
                    self._cond.notify_all()
        finally:
            stream.close()
            if log is not None:
                log.close()
            with self._cond:
                self._cond.notify_all()

    def send_line(self, line: str) -> None:
        """Write one line to the process's stdin (``commands=True``)."""
        if not self.running or self.proc is None or self.proc.stdin is None:
            raise RuntimeError(f"{self.name} is not running with a command input")
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process if it is still running (not to its group)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (and SIGCONT, so a stopped process acts on it); the exit code, or None when the process
        did not exit within ``timeout`` (it is left running)."""
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        self.signal(signal.SIGCONT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._join_pump()
        return self.proc.returncode

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL when the process has not exited after ``timeout``; the exit code."""
        if self.proc is None:
            return None
        rc = self.terminate(timeout)
        return rc if rc is not None else self.kill()

    def kill(self) -> int | None:
        """SIGKILL (a crash or a power loss); the exit code."""
        if self.proc is None:
            return None
        self.signal(signal.SIGKILL)
        self.proc.wait(10)
        self._join_pump()
        return self.proc.returncode

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for the process to exit on its own; its exit code."""
        assert self.proc is not None
        rc = self.proc.wait(timeout)
        self._join_pump()
        return rc

    def close(self) -> None:
        """Teardown: kill what still runs. Safe to call more than once."""
        if self.running:
            self.kill()
        self._join_pump()

    def _join_pump(self) -> None:
        if self._pump is not None:
            self._pump.join(5)
        if self.proc is not None and self.proc.stdin is not None and self.proc.poll() is not None:
            self.proc.stdin.close()

    # ------------------------------------------------------------------ output
    def output(self) -> str:
        """Every line pumped since the first start."""
        with self._cond:
            return "".join(self._lines)

    def tail(self, chars: int = 4000) -> str:
        return self.output()[-chars:]

    def mark(self) -> int:
        """A position in the output, for ``wait_line(..., after=mark)``."""
        with self._cond:
            return len(self._lines)

    def wait_line(self, match: LineMatch, timeout: float = 10.0, after: int = 0, *, until_exit: bool = True) -> str:
        """The first line from position ``after`` on that matches (a regex, or a predicate on the line).

        TimeoutError after ``timeout`` s; RuntimeError as soon as the process has exited and its output
        is read to the end without such a line (unless ``until_exit`` is False: then wait the whole time,
        for a process that a test restarts meanwhile)."""
        matches, what = _matcher(match)
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = after
            while True:
                for line in self._lines[seen:]:
                    if matches(line):
                        return line
                seen = len(self._lines)
                if until_exit and self._ended():
                    assert self.proc is not None
                    raise RuntimeError(
                        f"{self.name} exited ({self.proc.returncode}) without printing {what}\n{self._tail()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{what} not in the output of {self.name} after {timeout:g} s\n"
                                       f"{self._tail()}")
                self._cond.wait(remaining)

    def _ended(self) -> bool:
        return (
            self.proc is not None
            and self.proc.poll() is not None
            and (self._pump is None or not self._pump.is_alive())
        )

    def _tail(self, chars: int = 4000) -> str:
        return "".join(self._lines)[-chars:]

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid} rc={self.returncode}>"
