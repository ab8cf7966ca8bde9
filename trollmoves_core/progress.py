"""The progress bar of ``trollmoves move`` and ``trollmoves get`` on a terminal.

With rich installed (``pip install 'trollmoves-core[progress]'``) it shows the percentage
(when the size is known), the bytes done, the rate and the time left; without it, one plain
line. Sizes and rates are in binary units (:mod:`trollmoves_core.units`), as ``status`` shows
them. A file the mover linked (or renamed) instead of copying shows ``linked`` (``moved``)
instead of a rate. A size unknown at the start is known at the end.
"""

from __future__ import annotations

import os
import posixpath
import time
from typing import Any, TextIO

from trollmoves_core.units import human_bytes, human_progress
from trollmoves_core.uri import parse_uri


class ProgressBar:
    """The bar of one transfer from ``source`` (a local path or a URI), drawn on ``stream`` (a terminal).

    ``total`` is the size when the caller knows it (a remote source's); without it a local source's is
    read here.
    Call :meth:`advance` with the bytes done since the previous call and :meth:`finish` once,
    with the delivered file's URI or path (None when the transfer failed).
    """

    def __init__(self, source: str, stream: TextIO, *, total: int | None = None) -> None:
        location = parse_uri(source)
        self.name = posixpath.basename(location.path.rstrip("/")) or source
        self.stream = stream
        self.total = total
        self._local = location.path if location.scheme == "file" else None
        self._identity: tuple[int, int] | None = None
        if self._local is not None and total is None:
            try:
                status = os.stat(self._local)
            except OSError:
                pass
            else:
                self.total, self._identity = status.st_size, (status.st_dev, status.st_ino)
        self.done = 0
        self._rich = _rich_progress(stream)
        if self._rich is not None:
            self._task = self._rich.add_task(self.name, total=self.total, how="")
            self._rich.start()
        self.started = self._drawn = time.monotonic()

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        if self._rich is not None:
            self._rich.advance(self._task, nbytes)
            return
        now = time.monotonic()
        if now - self._drawn >= 0.1:
            self._drawn = now
            self._draw(now)

    def finish(self, result: str | None) -> None:
        how = self._how(result)
        if result is not None and self.total is None:
            self.total = self.done
        if self._rich is not None:
            self._rich.update(self._task, total=self.total, how=how)
            self._rich.stop()
            return
        self._draw(time.monotonic(), how)
        self.stream.write("\n")
        self.stream.flush()

    def _how(self, result: str | None) -> str:
        """``linked`` or ``moved`` when ``result`` is the source's own inode, else empty."""
        if result is None or self._identity is None:
            return ""
        location = parse_uri(result)
        if location.scheme != "file":
            return ""
        try:
            status = os.stat(location.path)
        except OSError:
            return ""
        if (status.st_dev, status.st_ino) != self._identity:
            return ""
        return "linked" if self._local is not None and os.path.exists(self._local) else "moved"

    def _draw(self, now: float, how: str = "") -> None:
        share = f"{100 * self.done / self.total:5.1f}%  " if self.total else ""
        rate = how or f"{human_bytes(self.done / max(now - self.started, 1e-6))}/s"
        self.stream.write(f"\r{self.name}  {share}{human_progress(self.done, self.total)}  {rate}")
        self.stream.flush()


def _rich_progress(stream: TextIO) -> Any:
    """A rich ``Progress`` with transfer columns on ``stream``, or None without rich."""
    try:
        from rich import progress
        from rich.console import Console
        from rich.text import Text
    except ImportError:
        return None

    class SizeColumn(progress.ProgressColumn):
        """Bytes done and the total, in the units of :mod:`trollmoves_core.units`."""

        def render(self, task: Any) -> Text:
            return Text(human_progress(task.completed, task.total), style="progress.download")

    class RateColumn(progress.ProgressColumn):
        """The rate (the mean so far when too few samples), or how the mover delivered without copying."""

        def render(self, task: Any) -> Text:
            if task.fields.get("how"):
                return Text(task.fields["how"], style="progress.data.speed")
            speed = task.finished_speed or task.speed or (task.completed / task.elapsed if task.elapsed else None)
            if speed is None:
                return Text("?", style="progress.data.speed")
            return Text(f"{human_bytes(speed)}/s", style="progress.data.speed")

    return progress.Progress(progress.TextColumn("{task.description}"), progress.BarColumn(),
                             progress.TaskProgressColumn(), SizeColumn(), RateColumn(),
                             progress.TimeRemainingColumn(), console=Console(file=stream))
