"""A dependency-free progress bar for ``trollmoves move`` on a terminal."""

from __future__ import annotations

import os
import time
from typing import TextIO


class ProgressBar:
    """Draws ``name  45%  12.3 MB  110.2 MB/s`` on one line, at most ten times a second."""

    def __init__(self, source: str, stream: TextIO) -> None:
        self.name = os.path.basename(source.rstrip("/")) or source
        self.stream = stream
        try:
            self.total: int | None = os.path.getsize(source)
        except OSError:
            self.total = None  # remote source: size unknown
        self.done = 0
        self.started = self._drawn = time.monotonic()

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        now = time.monotonic()
        if now - self._drawn >= 0.1:
            self._drawn = now
            self._draw(now)

    def finish(self) -> None:
        self._draw(time.monotonic())
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self.started, 1e-6) / 1e6
        share = f"{100 * self.done / self.total:5.1f}%  " if self.total else ""
        self.stream.write(f"\r{self.name}  {share}{self.done / 1e6:.1f} MB  {rate:.1f} MB/s")
        self.stream.flush()
