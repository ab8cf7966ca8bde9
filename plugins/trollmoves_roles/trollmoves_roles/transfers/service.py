"""Pushing files to requested destinations: a bounded worker pool, pooled movers, and
idempotent repeats.

Upstream clients re-send a ``push`` that timed out (up to 3 times), so the same request can
arrive while its transfer is still running, or just after it finished. A repeat of a running
push waits for that transfer; a repeat of a recently successful push is answered as done
without a second transfer. Finished pushes are remembered by a 128-bit hash of what was
pushed where (the files, by path and identity, the destination, the connection parameters),
in :class:`~trollmoves_roles.state.finished.FinishedPushes` (journalled when the role keeps state).

A push given ``backup_targets`` fails over when the destination's host cannot be reached (the
mover's error is transient after its retries, or the name does not resolve): the whole push is
tried again on each backup host in turn, for movers whose hosts are servers
(:attr:`~trollmoves_core.mover.Mover.BACKUP_HOSTS`), and the result names the host that got it.
Only the attempt that succeeded counts its files (metrics, ``pushed`` history, transfer log lines).

A push may be bandwidth limited (:mod:`trollmoves_core.bwlimit`): ``bwlimit`` is one bucket per
chain, ``bwlimit_per_host`` one per destination host (a backup host has its own); the service's
:class:`~trollmoves_core.bwlimit.Limits` holds them, so every concurrent push of the process to
one host draws from one bucket.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from trollmoves_core.bwlimit import Limits, Schedule, host_of
from trollmoves_core.checksum import Digest
from trollmoves_core.exceptions import TransferError
from trollmoves_core.logs import transfer_fields
from trollmoves_core.mover import Mover
from trollmoves_core.plugins import PluginHost
from trollmoves_core.recent import key_of
from trollmoves_core.uri import redact
from trollmoves_roles.observe.metrics import RoleMetrics
from trollmoves_roles.protocol.delivery import join_rel_path, on_host
from trollmoves_roles.protocol.requests import one_line
from trollmoves_roles.state import history
from trollmoves_roles.state.finished import FinishedPushes
from trollmoves_roles.transfers.movers import MoverCache, canonical

LOG = logging.getLogger(__name__)

DEFAULT_WORKERS = 16
"""Pushes at once: most wait on the network, so over a long link they set the rate (over 50 ms
of round trip an SFTP push takes three, so 8 workers cap 100 KiB files near 50 files/s)."""
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


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a push did: the URIs it delivered (no password; none for a repeat answered as done)
    and the backup host that got the files, or None for the destination's own host."""

    uris: list[str]
    host: str | None = None
    verified: bool = False
    """Every file's stored bytes were hashed and found to be the announced ones (by the mover)."""


@dataclass(frozen=True, slots=True)
class _Landed:
    """One file a push attempt delivered: local ``path``, the ``uri`` it got, bytes and seconds."""

    path: str
    uri: str
    size: int
    seconds: float
    verified: bool = False


class TransferService:
    """Run pushes on a bounded thread pool with one reusable mover per scheme and parameters.

    :param movers: where the movers come from (default: a :class:`MoverCache` of the installed plugins).
    """

    def __init__(self, workers: int = DEFAULT_WORKERS, *, host: PluginHost, recent_seconds: float = RECENT_SECONDS,
                 metrics: RoleMetrics | None = None, log_transfers: bool = True,
                 movers: MoverCache | None = None, limits: Limits | None = None) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="transfer")
        self._movers = movers if movers is not None else MoverCache(host)
        self.limits = limits if limits is not None else Limits()
        """The bandwidth buckets of this service's pushes."""
        self._lock = threading.Lock()
        self._running: dict[int, Future[Delivery]] = {}
        self.finished = FinishedPushes(recent_seconds, RECENT_MAX)
        """The pushes that succeeded lately (attach a journal to keep them across restarts)."""
        self._chains: dict[int, str] = {}
        """The chain of each running push."""
        self.transfers = 0
        """Files actually transferred (not answered from a repeat), for tests and metrics."""
        self.metrics = metrics
        self.log_transfers = log_transfers
        """Log each push as the per-file transfer line; off where the caller logs its own (mirror)."""
        if metrics is not None:
            metrics.set_queue_length(self.in_flight)

    def push(self, files: Sequence[FileJob], destination: str, params: dict[str, Any],
             chain: str = "", backup_targets: Sequence[str] = (), *, again: bool = False,
             bwlimit: Schedule | None = None, bwlimit_per_host: Schedule | None = None) -> Future[Delivery]:
        """Transfer ``files`` to ``destination`` (or, when its host cannot be reached, to the first of
        ``backup_targets`` that can); the future gives the :class:`Delivery`.

        An identical push already running is not started again: its future is returned. One
        that succeeded in the last ``recent_seconds`` is not transferred again either: the
        future is done at once, with no URIs and the host of the first delivery.
        ``chain`` labels the metrics. ``again`` transfers even what succeeded lately (the
        requester found the delivered copy bad). ``bwlimit`` and ``bwlimit_per_host`` limit the
        push's bandwidth (module docstring).
        """
        key = self._push_key(files, destination, params)
        with self._lock:
            running = self._running.get(key)
            if running is not None:
                LOG.info("Repeated push of %s to %s: waiting for the transfer in progress", _names(files),
                         redact(destination))
                return running
            done, host = self.finished.get(key)
            if done and not again:
                LOG.info("Repeated push of %s to %s: already done", _names(files), redact(destination))
                finished: Future[Delivery] = Future()
                finished.set_result(Delivery([], host))
                return finished
            future = self._executor.submit(self._transfer, files, destination, params, chain, tuple(backup_targets),
                                           limits=(bwlimit, bwlimit_per_host))
            self._running[key] = future
            self._chains[key] = chain
        future.add_done_callback(lambda f: self._finished(key, f))
        return future

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run other background work (unpacking) on the same pool."""
        return self._executor.submit(fn, *args)

    def _finished(self, key: int, future: Future[Delivery]) -> None:
        if future.exception() is None:
            self.finished.add(key, future.result().host)  # before it leaves _running: no gap for a repeat
        with self._lock:
            self._running.pop(key, None)
            self._chains.pop(key, None)

    def _push_key(self, files: Sequence[FileJob], destination: str, params: dict[str, Any]) -> int:
        # the file's identity too: a file replaced under the same name is a new push
        return key_of(json.dumps([[job.path, job.rel_path, _identity(job.path)] for job in files]
                                 + [destination, canonical(params)]))

    def _transfer(self, files: Sequence[FileJob], destination: str, params: dict[str, Any],
                  chain: str = "", backup_targets: tuple[str, ...] = (), *,
                  limits: tuple[Schedule | None, Schedule | None] = (None, None)) -> Delivery:
        hosts: list[str | None] = [None]
        try:
            if backup_targets:
                if self._mover(destination, params).BACKUP_HOSTS:
                    hosts.extend(backup_targets)
                else:
                    LOG.debug("backup_targets ignored for %s: its host is not a server", redact(destination))
            for number, host in enumerate(hosts, 1):
                target = destination if host is None else on_host(destination, host)
                try:
                    landed = self._transfer_to(files, target, params, chain, limits)
                except TransferError as err:
                    if number == len(hosts) or not _unreachable(err):
                        raise
                    LOG.warning("Push of %s to %s: host not reachable (%s); trying the backup host %s",
                                _names(files), redact(target, drop_user=True), err, hosts[number])
                    continue
                self._count(landed, chain)
                return Delivery([file.uri for file in landed], host,
                                bool(landed) and all(file.verified for file in landed))
        except BaseException:
            if self.metrics is not None:
                self.metrics.failed.inc(chain=chain)
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _mover(self, target: str, params: dict[str, Any]) -> Mover:
        # a bare path gets the file mover whatever its name looks like
        return self._movers.get(target if "://" in target else "file", params)

    def _transfer_to(self, files: Sequence[FileJob], destination: str, params: dict[str, Any],
                     chain: str, limits: tuple[Schedule | None, Schedule | None] = (None, None)) -> list[_Landed]:
        """Put each of ``files`` under ``destination``; what landed, counted by :meth:`_count` only
        once the whole push has (a failed attempt is repeated on a backup host)."""
        landed = []
        per_chain, per_host = limits
        throttle = None if per_chain is None and per_host is None else self.limits.throttle(
            [(("chain", chain), per_chain), (("host", host_of(destination)), per_host)])
        for job in files:
            target = join_rel_path(destination, job.rel_path)
            started = time.monotonic()
            try:
                mover = self._mover(target, params)
                size = os.path.getsize(job.path)
                uri, verified = mover.put_checked(job.path, target, expected=job.expected, progress=throttle)
            except BaseException as err:
                history.record("push failed", chain=chain, path=job.path, destination=redact(target, drop_user=True),
                               seconds=time.monotonic() - started, detail=one_line(err))
                raise
            landed.append(_Landed(job.path, uri, size, time.monotonic() - started, verified))
        return landed

    def _count(self, landed: Sequence[_Landed], chain: str) -> None:
        """Metrics, history and log lines of the files one successful push delivered."""
        with self._lock:
            self.transfers += len(landed)
        for file in landed:
            if self.metrics is not None:
                self.metrics.delivered.inc(chain=chain)
                self.metrics.bytes.inc(file.size, chain=chain)
                self.metrics.duration.observe(file.seconds, chain=chain)
            target_uri = redact(file.uri, drop_user=True)
            history.record("pushed", chain=chain, path=file.path, destination=target_uri, seconds=file.seconds,
                           size=file.size)
            if self.log_transfers:
                LOG.info("Pushed %s to %s: %d bytes in %.3f s", file.path, target_uri, file.size, file.seconds,
                         extra=transfer_fields(uid=os.path.basename(file.path), source=file.path,
                                               destination=target_uri, nbytes=file.size, seconds=file.seconds))
            else:
                LOG.debug("Pushed %s to %s: %d bytes in %.3f s", file.path, target_uri, file.size, file.seconds)

    def in_flight(self, chain: str | None = None) -> int:
        """Pushes running or queued (of ``chain``, or all)."""
        with self._lock:
            if chain is None:
                return len(self._running)
            return sum(1 for name in self._chains.values() if name == chain)

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


def _unreachable(err: TransferError) -> bool:
    """Whether ``err`` says the host could not be reached (rather than refusing the file)."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return True
        cause = cause.__cause__
    return err.transient


def _identity(path: str) -> list[int]:
    try:
        stat = os.stat(path)
    except OSError:
        return []
    return [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns]


def _names(files: Sequence[FileJob]) -> str:
    return ", ".join(job.path for job in files[:3]) + (f" (+{len(files) - 3})" if len(files) > 3 else "")
