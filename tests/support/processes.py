"""Subprocesses for the tests: a command with its output in a log file, restartable, SIGKILLable,
and always stopped (SIGTERM, then SIGKILL) at the end."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from support.bus import wait_until

TROLLMOVES = str(Path(sys.executable).with_name("trollmoves"))
"""Our launcher, from the venv running the tests."""


class LoggedProcess:
    """``argv`` run with stdout and stderr appended to ``log_path`` (one log across restarts).

    Started at construction; :meth:`start` again after :meth:`kill` or :meth:`stop` to restart it.
    ``PYTHONUNBUFFERED=1`` keeps the log current.
    """

    def __init__(self, argv: Sequence[object], log_path: Path, *, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.argv, self.log_path, self.cwd = [str(a) for a in argv], log_path, cwd
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.proc: subprocess.Popen | None = None
        self.log_offset = 0
        """Where the log of the current run begins."""
        self.start()

    def start(self) -> None:
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=self.env, cwd=self.cwd)

    def log(self) -> str:
        """The whole log (every run)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def run_log(self) -> str:
        """The log of the current run only."""
        with open(self.log_path, "rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, ready: Callable[[], object], timeout: float = 30.0, interval: float = 0.05) -> None:
        """Wait until ``ready()`` is true; fail with the log when it never is or the process exits first."""
        assert wait_until(lambda: not self.alive() or ready(), timeout, interval), \
            f"{self.argv[0]} not ready in {timeout} s\n{self.log()[-4000:]}"
        assert self.alive(), f"{self.argv[0]} exited with {self.proc and self.proc.returncode}\n{self.log()[-4000:]}"

    def wait_logged(self, line: str, timeout: float = 30.0) -> None:
        """Wait until this run logs ``line`` (a substring), e.g. a role's ``Server running``."""
        self.wait_ready(lambda: line in self.run_log(), timeout)

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` and wait for the exit; the exit status."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(20)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, SIGKILL after ``timeout`` s; the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


class TrollmovesProcess(LoggedProcess):
    """``trollmoves ARGS...`` (a role) as a :class:`LoggedProcess`."""

    def __init__(self, args: Sequence[object], log_path: Path, *, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        super().__init__([TROLLMOVES, *args], log_path, env=env, cwd=cwd)


class ClientProcess(TrollmovesProcess):
    """``trollmoves client CONFIG -v`` appending to one log across restarts."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config = config
        super().__init__(["client", config, "-v"], log_path)

    def delivered(self, pattern: str = r"f\d+\.dat") -> Counter:
        """Deliveries the client reports (``Delivered`` lines), by uid."""
        return Counter(re.findall(rf"Delivered ({pattern}) from", self.log()))

    def republished(self, pattern: str = r"f\d+\.dat") -> set[str]:
        """Files delivered just before a kill whose result message was published again after the restart."""
        return set(re.findall(rf"Published the result of ({pattern}) delivered before", self.log()))
