"""Watch a chain's origin directory and announce each complete new file on the bus."""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
import re
import stat
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from trollmoves_core.checksum import Digest, file_digest
from trollmoves_core.patterns import FilePattern
from trollmoves_core.watchers.base import Watcher
from trollmoves_roles.bus.transport import Publisher
from trollmoves_roles.observe.metrics import RoleMetrics
from trollmoves_roles.protocol.codec import make_message
from trollmoves_roles.server.announced import AnnouncedFiles
from trollmoves_roles.server.config import ServerChainConfig
from trollmoves_roles.server.deleter import Deleter
from trollmoves_roles.server.messages import announcement, standalone_announcement
from trollmoves_roles.state import history
from trollmoves_roles.transfers.service import TransferService
from trollmoves_roles.transfers.unpack import UnpackError, unpack

LOG = logging.getLogger(__name__)

WAITING_WARN_SECONDS = 60.0
"""How often a chain waiting for its missing origin directory says so again."""

BACKLOG_AHEAD = 1000
"""Backlog files a chain serving requests announces ahead of the pushes clients ask for: a big
backlog goes out at the pace clients fetch it, instead of piling up in their queues (memory) or
overflowing the publisher's (lost announcements)."""
BACKLOG_PATIENCE = 1.0
"""Seconds without a push request after which the backlog announces the next files anyway (no
client fetching, or clients that want only some of them)."""

WATCH_START_MARGIN = 1.0
"""Seconds before a watcher's start from which rescans look (file times are coarser than the clock);
older files are the backlog's business, or not to be announced at all with the backlog off."""


def present_files(pattern: FilePattern) -> Iterator[str]:
    """The paths already present that may match ``pattern``, lazily, in the order the directory lists
    them: the first come before the listing of a big directory ends, and no list of it is held."""
    if pattern.recursive:  # fields in directory names: glob walks them (lazily too)
        yield from glob.iglob(pattern.glob())
        return
    name = re.compile(fnmatch.translate(os.path.basename(pattern.glob()))).match
    directory = os.fspath(pattern.directory)
    with os.scandir(directory) as entries:
        for entry in entries:
            if not entry.name.startswith(".") and name(entry.name):
                yield os.path.join(directory, entry.name)  # a str: see FileCallback


class Announcer:
    """The watching half of a chain with an ``origin``.

    :param watcher: the watcher class to use (the host's ``watchdog``, ``polling``...).
    :param request_address: ``host:port`` put in each announcement (None in standalone mode).
    :param backlog_gate: set once announcements are sent rather than held (the server's
        ``--announce-delay``); the backlog waits for it, so that it is not held in memory.
    """

    def __init__(self, chain: ServerChainConfig, *, publisher: Publisher, announced: AnnouncedFiles,
                 request_address: str | None, watcher: type[Watcher], workers: TransferService,
                 deleter: Deleter, metrics: RoleMetrics | None = None,
                 backlog_gate: threading.Event | None = None) -> None:
        assert chain.origin is not None
        self.chain = chain
        self.pattern = chain.pattern
        self._publisher = publisher
        self._announced = announced
        self._request_address = request_address
        self._watcher_cls = watcher
        self._workers = workers
        self._deleter = deleter
        self._metrics = metrics
        self._watcher: Watcher | None = None
        self._watched_inode: int | None = None
        self._watch_started = 0.0
        """Unix time the watcher started."""
        self._backlog_gate = backlog_gate
        self._backlog: threading.Thread | None = None
        self._backlog_halt = threading.Event()
        self._waiting_since: float | None = None
        self._warned_at = 0.0
        self.reported = 0
        """Files the watcher (or a scan) handed to this chain."""
        self.pushes_requested: Callable[[], int] | None = None
        """How many files clients asked this chain to push so far (None: no requests served); paces
        the backlog (:data:`BACKLOG_AHEAD`)."""

    @property
    def directories(self) -> list[str]:
        """Directories whose announced files may be served."""
        dirs = [os.path.abspath(self.pattern.directory)]
        if self.chain.compression:
            dirs.append(os.path.abspath(self.chain.working_directory))
        return dirs

    @property
    def watching(self) -> bool:
        return self._watcher is not None

    @property
    def waiting(self) -> bool:
        """The origin directory did not exist at the last start: :meth:`resume` starts watching
        once it does (as upstream, a missing origin is not fatal)."""
        return self._watcher is None and self._waiting_since is not None

    def start(self, backlog: bool) -> bool:
        """Start watching (and announce the backlog); False when the directory is missing (the
        chain then waits for it, see :attr:`waiting`) or cannot be watched."""
        directory = self.pattern.directory
        if not os.path.lexists(directory):
            if self._waiting_since is None:
                self._waiting_since = self._warned_at = time.monotonic()
                LOG.warning("[%s] origin directory %s does not exist; watching starts when it appears",
                            self.chain.name, directory)
            return False
        self._waiting_since = None
        if not directory.is_dir():
            LOG.error("[%s] cannot watch %s: not a directory", self.chain.name, directory)
            self._watcher = None
            return False
        try:
            self._watched_inode = directory.stat().st_ino
            self._watch_started = time.time()
            watcher = self._watcher_cls([directory], self._on_file, recursive=self.pattern.recursive,
                                        interval=self.chain.watchdog_timeout, on_removed=self._announced.discard)
            watcher.start()
        except (OSError, RuntimeError) as err:
            LOG.error("[%s] cannot watch %s: %s", self.chain.name, directory, err)
            self._watcher = None
            return False
        self._watcher = watcher
        LOG.info("[%s] watching %s for %s (%s)", self.chain.name, directory, Path(self.chain.origin).name,
                 self._watcher_cls.NAME)
        if backlog:
            self._backlog_halt = threading.Event()
            self._backlog = threading.Thread(target=self.announce_backlog, args=(watcher, self._backlog_halt),
                                             name=f"backlog-{self.chain.name}", daemon=True)
            self._backlog.start()
        return True

    def resume(self, now: float) -> bool:
        """For a :attr:`waiting` chain: start watching when the directory exists now (with the
        backlog), else warn again every :data:`WAITING_WARN_SECONDS`; True when watching."""
        if not self.waiting:
            return self.watching
        if self.start(backlog=True):
            return True
        if self.waiting and now - self._warned_at >= WAITING_WARN_SECONDS:
            self._warned_at = now
            LOG.warning("[%s] still waiting for origin directory %s (missing for %.0f s)", self.chain.name,
                        self.pattern.directory, now - self._waiting_since)
        return False

    def stop(self) -> None:
        """Stop the backlog (waiting for the file it is announcing) and the watcher."""
        self._backlog_halt.set()
        if self._backlog is not None:
            self._backlog.join()
            self._backlog = None
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None

    def healthy(self) -> bool:
        """The watcher runs on the directory it started on (not a deleted and recreated one)."""
        if self._watcher is None:
            return False
        try:
            found = self.pattern.directory.stat()
        except OSError:
            return False
        return stat.S_ISDIR(found.st_mode) and found.st_ino == self._watched_inode  # inodes get reused

    def announce_backlog(self, watcher: Watcher, halt: threading.Event) -> None:
        """Announce the files already present, as the directory lists them, until ``halt`` is set
        (the backlog's thread, once the :attr:`backlog_gate` is open); a file the watcher
        also reports is announced once."""
        while self._backlog_gate is not None and not self._backlog_gate.wait(0.1):
            if halt.is_set():
                return
        started, before, found = time.monotonic(), self.reported, 0
        pace = _Pace(self.pushes_requested, lambda: self.reported - before)
        try:
            for path in present_files(self.pattern):
                if halt.is_set() or not pace.wait(halt):
                    LOG.info("[%s] backlog stopped after %d file(s)", self.chain.name, found)
                    return
                found += 1
                watcher.report(path)
        except OSError as err:
            LOG.error("[%s] cannot read the backlog in %s: %s", self.chain.name, self.pattern.directory, err)
            return
        LOG.info("[%s] backlog: %d file(s) found, %d new, in %.1f s", self.chain.name, found,
                 self.reported - before, time.monotonic() - started)

    def rescan(self, since: float) -> int:
        """Report files whose inode changed (created, renamed or linked in) since ``since`` (Unix
        time): a safety net for events the watcher lost (an inotify queue overflow under a burst).
        Files already reported are skipped: by the watcher, which remembers them for a while,
        and, beyond that, when this chain announced the same file after its last change. Files
        older than the watcher (:data:`WATCH_START_MARGIN`) are left to the backlog: a backlog
        larger than what the watcher and the record remember is not announced again.
        Returns how many were new."""
        if self._watcher is None:
            return 0
        since = max(since, self._watch_started - WATCH_START_MARGIN)
        before = self.reported
        for name in glob.iglob(self.pattern.glob(), recursive=False):
            try:
                stat = os.stat(name)
            except OSError:
                continue
            if stat.st_ctime < since:
                continue
            known = self._announced.get(name)
            if (known is not None and known.chain == self.chain.name and known.ino and known.same_file(stat)
                    and known.time >= stat.st_mtime):
                continue
            self._watcher.report(name)
        found = self.reported - before
        if found:
            LOG.warning("[%s] %d file(s) the watcher missed were found by the periodic rescan", self.chain.name,
                        found)
        return found

    # -- per file -------------------------------------------------------------------

    def _on_file(self, path: str) -> None:
        # path stays a str throughout (see trollmoves_core.watchers.base.FileCallback)
        self.reported += 1
        fields = self.pattern.match(path)
        if fields is None:
            LOG.debug("[%s] %s does not match %s", self.chain.name, path, self.chain.origin)
            return
        try:
            if os.stat(path).st_size == 0:
                LOG.debug("[%s] %s is empty, not announced", self.chain.name, path)
                return
        except OSError:
            LOG.warning("[%s] %s disappeared before it was announced", self.chain.name, path)
            return
        if self.chain.compression:
            self._workers.submit(self._unpack_and_announce, Path(path), fields)
        elif self.chain.standalone:
            self._announce_standalone(path, fields)
        else:
            self._announce(fields, [path])

    def _digests(self, files: list[str]) -> list[Digest | None] | None:
        """Each file's size and checksum (one read per file), or None when the chain wants none
        or a file cannot be read (it is then announced without, as before)."""
        if self.chain.checksum is None:
            return None
        try:
            return [file_digest(file, self.chain.checksum) for file in files]
        except OSError as err:
            LOG.warning("[%s] cannot compute the checksum of %s: %s", self.chain.name, files[0], err)
            return None

    def _announce(self, fields: dict[str, Any], files: list[str]) -> None:
        digests = self._digests(files)
        atype, data = announcement(self.chain, fields, files, self._request_address or "", digests)
        if self._request_address is None:
            del data["request_address"]
        # listed for info replies (reconciliation) only where requests are served
        listed = (self.chain.topic, atype, data) if self._request_address is not None else None
        self._announced.announce([(file, os.path.basename(file)) for file in files], self.chain.topic,
                                 self.chain.name, message=listed, digests=digests)
        self._publish(atype, data, len(files))
        for file in files:
            history.record("announced", chain=self.chain.name, path=file, detail=self.chain.topic)

    def _announce_standalone(self, path: str, fields: dict[str, Any]) -> None:
        members = None
        if self.chain.unpack:
            try:
                members = archive_members(path, self.chain.unpack)
            except (OSError, tarfile.TarError, zipfile.BadZipFile) as err:
                LOG.error("[%s] cannot list %s archive %s: %s", self.chain.name, self.chain.unpack, path, err)
                return
        digests = self._digests([path]) if members is None else None
        atype, data = standalone_announcement(self.chain, fields, path, members,
                                              digest=digests[0] if digests else None)
        self._publish(atype, data)

    def _unpack_and_announce(self, path: Path, fields: dict[str, Any]) -> None:
        started = time.monotonic()
        try:
            outputs = unpack(path, self.chain.compression, Path(self.chain.working_directory),
                             program=self.chain.prog, delete=self.chain.delete)
        except UnpackError as err:
            LOG.error("[%s] %s", self.chain.name, err)
            return
        LOG.debug("[%s] unpacked %s to %d file(s) in %.3f s", self.chain.name, path, len(outputs),
                  time.monotonic() - started)
        self._announce(fields, [str(output) for output in outputs])
        for output in outputs:
            self._deleter.schedule(str(output), self.chain.remove_delay)

    def _publish(self, atype: str, data: dict[str, Any], count: int = 1) -> None:
        message = make_message(self.chain.topic, atype, data)
        self._publisher.send(message)
        if self._metrics is not None:
            self._metrics.announced.inc(count, chain=self.chain.name)
        LOG.info("[%s] announced %s", self.chain.name, data.get("uri") or data.get("uid") or atype)


class _Pace:
    """Holds a backlog while it is :data:`BACKLOG_AHEAD` files ahead of the push requests, for
    at most :data:`BACKLOG_PATIENCE` seconds without a new one."""

    def __init__(self, requested: Callable[[], int] | None, announced: Callable[[], int]) -> None:
        self._requested, self._announced = requested, announced
        self._base = requested() if requested is not None else 0

    def wait(self, halt: threading.Event) -> bool:
        """Return once the next file may be announced (True), or ``halt`` is set (False)."""
        if self._requested is None:
            return True
        last, since = self._requested(), time.monotonic()
        while self._announced() - (self._requested() - self._base) >= BACKLOG_AHEAD:
            if halt.wait(0.005):
                return False
            now = self._requested()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= BACKLOG_PATIENCE:
                self._base -= BACKLOG_AHEAD  # nobody fetches these: announce the next window
                since = time.monotonic()
        return True


def archive_members(path: str | os.PathLike[str], kind: str) -> list[str]:
    """Names of the regular files in a tar or zip archive."""
    if kind == "tar":
        with tarfile.open(path) as archive:
            return [m.name for m in archive.getmembers() if m.isfile()]
    with zipfile.ZipFile(path) as archive:
        return [i.filename for i in archive.infolist() if not i.is_dir()]
