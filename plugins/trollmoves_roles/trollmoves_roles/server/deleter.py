"""Delayed deletion of served files (``delete`` / ``remove_delay``) on one timer thread."""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

from trollmoves_roles.state import history

LOG = logging.getLogger(__name__)


class Deleter:
    """Delete files ``delay`` seconds after :meth:`schedule`; a path scheduled twice is deleted once.

    ``on_delete`` is called with each path after it is removed (to forget it as announced).
    """

    def __init__(self, on_delete: Callable[[str], None] | None = None) -> None:
        self._on_delete = on_delete
        self._heap: list[tuple[float, int, str]] = []
        self._scheduled: set[str] = set()
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="deleter", daemon=True)
        self._thread.start()

    def schedule(self, path: str, delay: float) -> None:
        with self._cond:
            if path in self._scheduled:
                return
            self._scheduled.add(path)
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._counter), path))
            self._cond.notify()
        LOG.debug("Deleting %s in %s s", path, delay)

    def pending(self) -> list[str]:
        with self._cond:
            return sorted(self._scheduled)

    def stop(self) -> None:
        """Stop; deletions not yet due are dropped (the files stay, to be served again)."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cond.wait(None if not self._heap else self._heap[0][0] - time.monotonic())
                if self._stopped:
                    return
                _, _, path = heapq.heappop(self._heap)
                self._scheduled.discard(path)
            self._delete(path)

    def _delete(self, path: str) -> None:
        try:
            os.remove(path)
            LOG.info("Removed %s", path)
            history.record("deleted", path=path)
        except FileNotFoundError:
            LOG.debug("%s already gone", path)
        except OSError as err:
            LOG.warning("Could not remove %s: %s", path, err.strerror or err)
            return
        if self._on_delete is not None:
            self._on_delete(path)
