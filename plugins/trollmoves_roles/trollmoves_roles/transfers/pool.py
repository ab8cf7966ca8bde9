"""A bounded worker pool: :meth:`BoundedPool.submit` waits for room instead of queueing
without limit (the dispatcher and downloader run their transfers on it)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

LOG = logging.getLogger(__name__)


class BoundedPool:
    """A thread pool that holds at most ``workers + backlog`` jobs; :meth:`submit` waits for room.

    Waiting (instead of queueing without limit) pushes back on the message loop, so a slow
    destination costs bounded memory: the zmq socket buffers the rest.
    """

    def __init__(self, workers: int, backlog: int | None = None, name: str = "transfer") -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._slots = threading.BoundedSemaphore(workers + (workers * 4 if backlog is None else backlog))
        self._pending: set[Future[Any]] = set()
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None], halt: threading.Event | None = None) -> bool:
        """Queue ``job``; wait for room unless ``halt`` is set meanwhile (then return False)."""
        while not self._slots.acquire(timeout=0.2):
            if halt is not None and halt.is_set():
                return False
        future = self._executor.submit(_guarded, job)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)
        return True

    def _done(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)
        self._slots.release()

    @property
    def pending(self) -> int:
        """Jobs queued or running."""
        with self._lock:
            return len(self._pending)

    def shutdown(self) -> None:
        """Drop queued jobs (logging how many), wait for running ones."""
        with self._lock:
            pending = list(self._pending)
        cancelled = sum(1 for f in pending if f.cancel())  # cancel() runs _done, which takes the lock
        if cancelled:
            LOG.warning("Stopping: %d queued transfer(s) dropped", cancelled)
        self._executor.shutdown(wait=True)


def _guarded(job: Callable[[], None]) -> None:
    try:
        job()
    except Exception:  # one failing job must never kill a worker thread silently
        LOG.exception("Transfer job failed unexpectedly")
