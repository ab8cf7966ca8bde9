"""Pushing files to requested destinations: a bounded worker pool, pooled movers, and
idempotent repeats.

Upstream clients re-send a ``push`` that timed out (up to 3 times), so the same request can
arrive while its transfer is still running, or just after it finished. A repeat of a running
push waits for that transfer; a repeat of a recently successful push is answered as done
without a second transfer. Finished pushes are remembered by a 128-bit hash of what was
pushed where (files, destination, connection parameters).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from trollmoves_core.checksum import Digest
from trollmoves_core.logs import transfer_fields
from trollmoves_core.plugins import PluginHost
from trollmoves_core.recent import RecentKeys, key_of
from trollmoves_core.uri import redact
from trollmoves_roles.observe.metrics import RoleMetrics
from trollmoves_roles.protocol.delivery import join_rel_path
from trollmoves_roles.transfers.movers import MoverCache, canonical

LOG = logging.getLogger(__name__)

DEFAULT_WORKERS = 8
RECENT_SECONDS = 300.0
"""How long a finished push is remembered for repeats (longer than a client's 3 x 10 s retries)."""
RECENT_MAX = 10000


@dataclass(frozen=True, slots=True)
class FileJob:
    """One file of a push: the local ``path``, the dict's ``path`` key (``rel_path``) and the size
    and checksum it was announced with (``expected``: the mover verifies the copy against it)."""

    path: str
    rel_path: str | None = None
    expected: Digest | None = None


class TransferService:
    """Run pushes on a bounded thread pool with one reusable mover per scheme and parameters.

    :param movers: where the movers come from (default: a :class:`MoverCache` of the installed plugins).
    """

    def __init__(self, workers: int = DEFAULT_WORKERS, *, host: PluginHost, recent_seconds: float = RECENT_SECONDS,
                 metrics: RoleMetrics | None = None, log_transfers: bool = True,
                 movers: MoverCache | None = None) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="transfer")
        self._movers = movers if movers is not None else MoverCache(host)
        self._lock = threading.Lock()
        self._running: dict[int, Future[list[str]]] = {}
        self._recent = RecentKeys(recent_seconds, RECENT_MAX)
        """Keys of the pushes that succeeded lately."""
        self.transfers = 0
        """Files actually transferred (not answered from a repeat), for tests and metrics."""
        self.metrics = metrics
        self.log_transfers = log_transfers
        """Log each push as the per-file transfer line; off where the caller logs its own (mirror)."""
        if metrics is not None:
            metrics.set_queue_length(self.in_flight)

    def push(self, files: Sequence[FileJob], destination: str, params: dict[str, Any],
             chain: str = "", *, again: bool = False) -> Future[list[str]]:
        """Transfer ``files`` to ``destination``; the future gives each URI delivered (no password).

        An identical push already running is not started again: its future is returned. One
        that succeeded in the last ``recent_seconds`` is not transferred again either: the
        future is done at once, with an empty list (nothing was delivered by this call).
        ``chain`` labels the metrics. ``again`` transfers even what succeeded lately (the
        requester found the delivered copy bad).
        """
        key = self._push_key(files, destination, params)
        with self._lock:
            running = self._running.get(key)
            if running is not None:
                LOG.info("Repeated push of %s to %s: waiting for the transfer in progress", _names(files),
                         redact(destination))
                return running
            if key in self._recent and not again:
                LOG.info("Repeated push of %s to %s: already done", _names(files), redact(destination))
                finished: Future[list[str]] = Future()
                finished.set_result([])
                return finished
            future = self._executor.submit(self._transfer, files, destination, params, chain)
            self._running[key] = future
        future.add_done_callback(lambda f: self._finished(key, f))
        return future

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run other background work (unpacking) on the same pool."""
        return self._executor.submit(fn, *args)

    def _finished(self, key: int, future: Future[list[str]]) -> None:
        with self._lock:
            self._running.pop(key, None)
            if future.exception() is None:
                self._recent.add(key)

    def _push_key(self, files: Sequence[FileJob], destination: str, params: dict[str, Any]) -> int:
        return key_of(json.dumps([[job.path, job.rel_path] for job in files] + [destination, canonical(params)]))

    def _transfer(self, files: Sequence[FileJob], destination: str, params: dict[str, Any],
                  chain: str = "") -> list[str]:
        delivered = []
        for job in files:
            target = join_rel_path(destination, job.rel_path)
            started = time.monotonic()
            try:
                # a bare path gets the file mover whatever its name looks like
                mover = self._movers.get(target if "://" in target else "file", params)
                size = os.path.getsize(job.path)
                delivered.append(mover.put(job.path, target, expected=job.expected))
            except BaseException:
                if self.metrics is not None:
                    self.metrics.failed.inc(chain=chain)
                raise
            elapsed = time.monotonic() - started
            with self._lock:
                self.transfers += 1
            if self.metrics is not None:
                self.metrics.delivered.inc(chain=chain)
                self.metrics.bytes.inc(size, chain=chain)
                self.metrics.duration.observe(elapsed, chain=chain)
            target_uri = redact(delivered[-1], drop_user=True)
            if self.log_transfers:
                LOG.info("Pushed %s to %s in %.3f s", job.path, target_uri, elapsed,
                         extra=transfer_fields(uid=os.path.basename(job.path), source=job.path,
                                               destination=target_uri, nbytes=size, seconds=elapsed))
            else:
                LOG.debug("Pushed %s to %s in %.3f s", job.path, target_uri, elapsed)
        return delivered

    def in_flight(self) -> int:
        with self._lock:
            return len(self._running)

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for running pushes; True when none is left."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = list(self._running.values())
            if not pending:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                pending[0].exception(timeout=remaining)
            except TimeoutError:
                return False

    def close(self, timeout: float = 30.0) -> None:
        """Finish running pushes (up to ``timeout`` s), drop queued ones, close mover connections."""
        if not self.wait_idle(timeout):
            LOG.warning("Stopping with %d push(es) still running", self.in_flight())
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._movers.close_all()


def _names(files: Sequence[FileJob]) -> str:
    return ", ".join(job.path for job in files[:3]) + (f" (+{len(files) - 3})" if len(files) > 3 else "")
