"""Rate-limited logging for input we do not control (bad requests, refused peers, malformed
messages): a flood of bad input must not become a flood of log lines.

Each kind of problem (a ``key``) may log ``burst`` lines per ``period`` seconds; the rest are
counted, and the next line that gets through says how many were suppressed.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any


class RateLimitedLog:
    """Log through ``logger`` at most ``burst`` lines per ``period`` seconds for each key."""

    def __init__(self, logger: logging.Logger, *, period: float = 10.0, burst: int = 10) -> None:
        self.logger = logger
        self.period, self.burst = period, burst
        self._windows: dict[str, list[float | int]] = {}  # key -> [window start, lines logged, suppressed]
        self._lock = threading.Lock()
        self.suppressed_total = 0

    def log(self, level: int, key: str, message: str, *args: Any, exc_info: Any = None) -> bool:
        """Log ``message % args`` unless ``key`` is over its budget; True when it was logged."""
        now = time.monotonic()
        with self._lock:
            window = self._windows.get(key)
            if window is None or now - window[0] >= self.period:
                suppressed = int(window[2]) if window is not None else 0
                window = self._windows[key] = [now, 0, 0]
                if len(self._windows) > 1000:  # keys come from a fixed set; this only bounds a mistake
                    self._windows = {key: window}
            else:
                suppressed = 0
            if window[1] >= self.burst:
                window[2] += 1
                self.suppressed_total += 1
                return False
            window[1] += 1
        if suppressed:
            message += " (%d similar line(s) suppressed in the previous %g s)"
            args = (*args, suppressed, self.period)
        self.logger.log(level, message, *args, exc_info=exc_info)
        return True

    def warning(self, key: str, message: str, *args: Any) -> bool:
        return self.log(logging.WARNING, key, message, *args)

    def error(self, key: str, message: str, *args: Any, exc_info: Any = None) -> bool:
        return self.log(logging.ERROR, key, message, *args, exc_info=exc_info)
