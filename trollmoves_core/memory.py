"""Give the memory a burst of work used back to the operating system once the process is idle.

After a burst the C allocator (glibc malloc) keeps the freed memory in its heaps for reuse:
the resident size stays at the burst's peak, and a long-running role looks as if it grew with
every burst. :class:`IdleTrimmer` watches the process's CPU time and, when a busy period is
followed by a quiet one, calls :func:`release_free_memory` once, which returns the free pages.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
import threading
import time

LOG = logging.getLogger(__name__)

CHECK_INTERVAL = 0.5
"""Seconds between two looks at the CPU time."""
BUSY_SHARE = 0.1
"""Share of one core used in an interval that makes it busy."""
IDLE_SHARE = 0.02
"""Share of one core used in an interval at most for it to count as quiet."""


@functools.cache
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the free memory to the operating system; False where the C allocator cannot.

    Collects the burst's reference cycles first, then calls ``malloc_trim(0)``.
    """
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class IdleTrimmer:
    """Call :func:`release_free_memory` once after each busy period, when the process goes quiet.

    Runs in a daemon thread from :meth:`start` until :meth:`stop`; costs one wake-up per
    :data:`CHECK_INTERVAL` and nothing when there is no allocator to trim.
    """

    def __init__(self, interval: float = CHECK_INTERVAL) -> None:
        self.interval = interval
        self.trims = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-trimmer", daemon=True)

    def start(self) -> IdleTrimmer:
        if _malloc_trim() is not None:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        busy = False
        last = time.process_time()
        while not self._stop.wait(self.interval):
            now = time.process_time()
            used, last = now - last, now
            if used >= BUSY_SHARE * self.interval:
                busy = True
            elif busy and used <= IDLE_SHARE * self.interval:
                busy = False
                started = time.perf_counter()
                release_free_memory()
                self.trims += 1
                last = time.process_time()  # the trim's own CPU time is not work
                LOG.debug("Returned free memory to the system after a busy period (%.1f ms)",
                          1000 * (time.perf_counter() - started))
