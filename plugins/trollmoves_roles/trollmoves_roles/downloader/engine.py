"""The downloader: fetch each announced file or object to a local directory, announce the copy.

For each ``file``, ``dataset`` or ``collection`` message on the subscribed topics, every
announced ``uri`` is fetched with its scheme's mover ``get`` (atomic: a hidden temporary
name, then a rename) into ``download_destination``, keeping its name. When every file of the
message is here, a message of the same type is published on ``publish-topic`` with the same
metadata, each ``uri`` replaced by the local path and each ``uid`` by the local name; keys
that described the remote copy (``filesystem``, ``path``) are dropped, and so are
``request_address`` and ``destination``: a client would take the copy's announcement for a
server's.

Members of one archive object (``zip://m1.nc::s3://bucket/X.zip``, :mod:`.sources`) are fetched
as that object, once per message; ``unpack_members`` unpacks the announced members, or keeps the
archive and announces ``zip://m1.nc::<local archive>``.

Upstream's rule for plain names is kept: with ``bucket`` set, a ``uri`` without a scheme
means ``s3://<bucket>/<basename>``. With ``bucket`` set, objects of other buckets are skipped.

With a journal (``--state-directory``), a message is recorded until its files are fetched and
announced; a restarted downloader (even after ``kill -9``) fetches what is missing, reuses the
files already here, and announces once (:mod:`trollmoves_roles.state.pending`).

The configuration is re-read on :meth:`Downloader.request_reload` (SIGHUP) or when the file
changes: topics, subscription addresses, nameservers, bucket, destination and connection
settings apply to the next messages; the publisher and the number of parallel downloads need a
restart (a warning says so). A configuration that does not load is logged and the old one kept.

Each downloaded file is logged with :func:`~trollmoves_core.logs.log_transfer` and counted in the
metrics, like the dispatcher's.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from posttroll.message import Message

from trollmoves_core.bwlimit import Limits, host_of
from trollmoves_core.checksum import Digest, from_data
from trollmoves_core.exceptions import TransferError, UnknownPluginError
from trollmoves_core.logs import file_size, log_transfer
from trollmoves_core.plugins import PluginHost
from trollmoves_core.uri import parse_uri, redact
from trollmoves_roles.bus.posttroll import NameserverLookup
from trollmoves_roles.bus.security import CurveClient
from trollmoves_roles.bus.transport import Publisher, Subscriber
from trollmoves_roles.downloader.config import DownloaderConfig, load_config
from trollmoves_roles.downloader.sources import Source, split_chained
from trollmoves_roles.observe.metrics import RoleMetrics
from trollmoves_roles.protocol.copies import Copy, copy_data
from trollmoves_roles.protocol.messages import FILE_TYPES, BadMessage, file_entries
from trollmoves_roles.runtime.listening import ListeningService
from trollmoves_roles.runtime.transports import transport_for
from trollmoves_roles.state import history
from trollmoves_roles.state.pending import PendingMessage, PendingMessages
from trollmoves_roles.transfers.movers import MoverCache
from trollmoves_roles.transfers.pool import BoundedPool
from trollmoves_roles.transfers.unpack import UnpackError, unpack

LOG = logging.getLogger(__name__)

RESTART_KEYS = {"publish_port": "publish_port", "nameservers": "nameservers",
                "parallel_downloads": "parallel_downloads",
                "subscribe_curve": "client_secret_key_file/publisher_public_key_file"}
"""Settings a reload cannot change (config key by attribute)."""
ANNOUNCED = "\0announced"
"""The journal part done when the local copies were announced (the message is finished)."""


class Downloader(ListeningService):
    """Serve one downloader configuration until stopped.

    :param publisher: where local copies are announced; None announces nothing.
    :param addresses: publisher addresses to subscribe to, besides the config's.
    :param nameservers: nameservers to ask for publishers, replacing the config's when given.
    :param watch: re-read the config file when it changes on disk (SIGHUP reloads in any case).
    :param host: the plugins whose movers (and config watcher) to use.
    :param metrics: where to count (a fresh :class:`RoleMetrics` when not given).
    """

    def __init__(self, config: DownloaderConfig, *, publisher: Publisher | None = None,
                 addresses: Iterable[str] = (), nameservers: Iterable[str] | None = None,
                 workers: int | None = None, host: PluginHost,
                 pending: PendingMessages | None = None, watch: bool = False,
                 metrics: RoleMetrics | None = None, bus: str | None = None) -> None:
        self.config = config
        self.host = host
        self.publisher = publisher
        self.extra_addresses = list(addresses)
        self.nameservers_override = None if nameservers is None else list(nameservers)
        self.movers = MoverCache(self.host)
        self.limits = Limits()
        """The bandwidth buckets of all downloads and of each source host."""
        self.transport = transport_for(host, bus)
        self.pool = BoundedPool(workers or config.parallel_downloads, name="download")
        self.pending = pending if pending is not None else PendingMessages()
        self.metrics = metrics if metrics is not None else RoleMetrics("downloader", chains=False)
        self.metrics.set_queue_length(lambda: self.pool.pending)
        self.received = 0
        self.handled = 0
        self.fetched = 0
        self.failed = 0
        self._lock = threading.Lock()
        self.config_path = config.file
        self.watch_config(self.host, watch)

    @property
    def addresses(self) -> list[str]:
        """Publishers subscribed to: the config's and the extra ones."""
        return list(dict.fromkeys([*self.config.subscriber_addresses, *self.extra_addresses]))

    @property
    def nameservers(self) -> list[str]:
        """Nameservers asked for publishers: the override, else the config's."""
        if self.nameservers_override is not None:
            return list(self.nameservers_override)
        return list(self.config.subscribe_nameservers)

    def serve(self, halt: threading.Event) -> None:
        """Receive and download until ``halt`` is set; then finish running downloads."""
        self.config.download_destination.mkdir(parents=True, exist_ok=True)
        super().serve(halt)

    def _describe(self, subscription: Subscriber, lookup: NameserverLookup) -> None:
        LOG.info("Downloader listening to %s on %s (nameservers: %s), downloading to %s",
                 ", ".join(self.config.subscribe_topics), ", ".join(subscription.addresses) or "-",
                 ", ".join(lookup.nameservers) or "-", self.config.download_destination)

    def _load(self) -> DownloaderConfig:
        config = load_config(self.config_path)
        config.download_destination.mkdir(parents=True, exist_ok=True)
        return config

    def _apply(self, config: DownloaderConfig) -> None:
        for attribute, key in RESTART_KEYS.items():
            if getattr(config, attribute) != getattr(self.config, attribute):
                LOG.warning("%s: %s changed; it takes effect at the next restart", config.file, key)
        self.config = config
        LOG.info("Configuration %s reloaded: topics %s, downloading to %s", config.file,
                 ", ".join(config.subscribe_topics), config.download_destination)

    def _addresses(self) -> list[str]:
        return self.addresses

    def _lookup(self) -> NameserverLookup:
        return NameserverLookup(self.nameservers, self.config.services)

    def _curve(self) -> CurveClient | None:
        return self.config.subscribe_curve

    def _topics(self) -> list[str]:
        return list(self.config.subscribe_topics)

    def handle(self, message: Message, halt: threading.Event | None = None) -> bool:
        """Queue the download ``message`` asks for; return whether one was queued. Never raises."""
        with self._lock:
            self.received += 1
        if message.type not in FILE_TYPES:
            LOG.debug("Ignoring %s message on %s", message.type, message.subject)
            return False
        try:
            sources = self.plan(message)
        except BadMessage as err:
            self.metrics.bad_input.inc()
            LOG.warning("Skipping message on %s: %s", message.subject, err)
            sources = []
        except Exception:  # a surprise in one message must not stop the downloader
            LOG.exception("Skipping message on %s", message.subject)
            sources = []
        queued = bool(sources) and self._submit(message, sources, halt)
        with self._lock:
            self.handled += 1
        return queued

    def _submit(self, message: Message, sources: list[Source], halt: threading.Event | None,
                done: dict[str, Any] | None = None) -> bool:
        key = self.pending.add(message, [*(s.announced for s in sources), ANNOUNCED], done)
        if not self.pool.submit(lambda: self.fetch(message, sources, key=key, done=done), halt):
            return False
        self.metrics.requested.inc(len(sources))
        return True

    def _resume(self, item: PendingMessage, halt: threading.Event | None) -> bool:
        """Fetch what an unfinished message of the killed run still misses, then announce it."""
        try:
            sources = self.plan(item.message)
        except Exception as err:  # the config changed: nothing left to do
            LOG.warning("Not resuming a message on %s: %s", item.message.subject, err)
            sources = []
        if not sources:
            self.pending.finish(item.key)
            return False
        LOG.info("Resuming a message on %s (%d of %d file(s) already here)", item.message.subject,
                 sum(1 for s in sources if _still_here(item.done.get(s.announced))), len(sources))
        return self._submit(item.message, sources, halt, item.done)

    def plan(self, message: Message) -> list[Source]:
        """What to fetch for each file of ``message`` this downloader wants.

        :raises BadMessage: naming a ``uri`` that cannot be fetched, and why.
        """
        sources = []
        for entry in file_entries(message.type, message.data):
            announced = str(entry["uri"])
            url, kind, member = split_chained(announced)
            source = self.source_uri(url)
            if source is None:
                LOG.info("Skipping %s: not in bucket %s", redact(announced), self.config.bucket)
                continue
            try:
                self.host.mover_class(source)
            except UnknownPluginError as err:  # a bad message, not a failed download
                raise BadMessage(f"cannot fetch {redact(source)}: {err}") from None
            sources.append(Source(announced, source, member, kind))
        return sources

    def source_uri(self, uri: str) -> str | None:
        """Where to fetch ``uri`` from; None when it is outside the configured bucket."""
        bucket = self.config.bucket
        try:
            location = parse_uri(uri)
        except ValueError as err:
            raise BadMessage(f"cannot fetch it: {err}") from None
        if bucket and "://" not in uri:
            return f"s3://{bucket}/{posixpath.basename(location.path)}"
        if bucket and location.scheme == "s3" and location.host != bucket:
            return None
        return uri

    def fetch(self, message: Message, sources: list[Source], *, key: str | None = None,
              done: dict[str, Any] | None = None) -> bool:
        """Download every object of ``message`` (once, however many of its members are announced),
        then announce the copies. Returns whether all arrived.

        ``key`` and ``done`` come from the journal: files fetched by an earlier run that are still
        here are not fetched again.
        """
        key = key if key is not None else PendingMessages.key_of(message.encode())
        local: dict[str, str] = {}  # announced URI -> local path (str: no pathlib per file)
        uids = _uids(message)
        expected = {str(entry["uri"]): from_data(entry) for entry in file_entries(message.type, message.data)}
        for (url, kind), group in _by_object(sources).items():
            earlier = {s.announced: (done or {}).get(s.announced) for s in group}
            if all(_still_here(path) for path in earlier.values()):
                local.update({announced: str(path) for announced, path in earlier.items()})
                continue
            started = time.monotonic()
            try:
                paths, size = self._fetch_object(url, kind, group, expected)
            except (TransferError, UnpackError) as err:
                self._count(failed=True)
                LOG.error("Download failed, message on %s skipped: %s", message.subject, err)
                _record("download failed", uids.get(group[0].announced), url, started, detail=str(err))
                self.pending.finish(key)
                return False
            except Exception as err:  # a mover bug: report it the same way, keep serving
                self._count(failed=True)
                LOG.error("Download of %s failed, message on %s skipped: %s: %s", redact(url), message.subject,
                          type(err).__name__, err)
                _record("download failed", uids.get(group[0].announced), url, started,
                        detail=f"{type(err).__name__}: {err}")
                self.pending.finish(key)
                return False
            seconds = time.monotonic() - started
            self._count(failed=False, size=size, seconds=seconds)
            for announced, path in paths.items():
                local[announced] = path
                self.pending.done(key, announced, path)
                _record("downloaded", uids.get(announced), url, started, path=path, size=file_size(path))
            shown = ", ".join(dict.fromkeys(paths.values()))
            log_transfer(LOG, uid=uids.get(group[0].announced) or posixpath.basename(urlsplit(url).path),
                         source=redact(url), destination=shown, nbytes=size, seconds=seconds)
        self._announce(message, sources, local)
        self.pending.done(key, ANNOUNCED)
        return True

    def _fetch_object(self, url: str, kind: str | None, group: list[Source],
                      expected: dict[str, Digest | None]) -> tuple[dict[str, str], int | None]:
        """Fetch one object for the sources of ``group``: ``(announced uri -> local path, bytes fetched)``.

        Archive members are unpacked into ``download_destination`` (only the announced ones), unless
        ``unpack_members`` is off: then the archive itself is the local copy of each. A whole file
        is verified against ``expected`` (its announced size and checksum) by the mover.
        """
        config = self.config
        destination = str(config.download_destination).rstrip("/") + "/"
        mover = self.movers.get(url, config.params_for(parse_uri(url).scheme))
        throttle = self.limits.throttle([(("downloads",), config.bwlimit),
                                         (("host", host_of(url)), config.bwlimit_per_host)])
        if kind is None or not config.unpack_members:
            # a copy that is not what was announced is discarded and fetched again by the mover
            path = mover.get(url, destination, expected=expected.get(group[0].announced) if kind is None else None,
                             progress=throttle)
            return {s.announced: path for s in group}, file_size(path)
        staging = tempfile.mkdtemp(prefix=".trollmoves_", dir=destination)
        try:
            archive = mover.get(url, staging + "/", progress=throttle)
            unpack(Path(archive), kind, Path(destination), members=sorted({str(s.member) for s in group}))
            return {s.announced: destination + str(s.member) for s in group}, file_size(archive)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _announce(self, message: Message, sources: list[Source], local: dict[str, str]) -> None:
        if self.publisher is None:
            return
        copies = {s.announced: _copy(s, local[s.announced], self.config.unpack_members) for s in sources}
        data = copy_data(message.data, copies)
        try:
            self.publisher.send(Message(self.config.publish_topic, message.type, data))
        except Exception as err:  # the files are here; a publishing problem must not hide that
            LOG.error("Cannot announce %s: %s", ", ".join(dict.fromkeys(local.values())), err)
            return
        self.metrics.announced.inc(len(local))

    def _count(self, *, failed: bool, size: int | None = None, seconds: float = 0.0) -> None:
        with self._lock:
            if failed:
                self.failed += 1
            else:
                self.fetched += 1
        if failed:
            self.metrics.failed.inc()
            return
        self.metrics.delivered.inc()
        self.metrics.bytes.inc(size or 0)
        self.metrics.duration.observe(seconds)


def _uids(message: Message) -> dict[str, str]:
    """Announced ``uri`` → its ``uid`` (when the message gives one)."""
    try:
        return {str(e["uri"]): str(e["uid"]) for e in file_entries(message.type, message.data) if e.get("uid")}
    except BadMessage:
        return {}


def _still_here(path: object) -> bool:
    return isinstance(path, str) and bool(path) and os.path.isfile(path)


def _by_object(sources: list[Source]) -> dict[tuple[str, str | None], list[Source]]:
    """The sources grouped by the object to fetch (and how it is read), in message order."""
    groups: dict[tuple[str, str | None], list[Source]] = {}
    for source in sources:
        groups.setdefault((source.url, source.kind), []).append(source)
    return groups


def _copy(source: Source, path: str, unpacked: bool) -> Copy:
    """How the result message names the local copy of ``source``: the local file, or the member
    in the local archive (``zip://m1.nc::/data/in/X.zip``) when members are not unpacked."""
    if source.member is None or unpacked:
        return Copy(uri=path, uid=os.path.basename(path))
    return Copy(uri=f"{source.kind}://{source.member}::{path}", uid=source.member_name)


def _record(event: str, uid: str | None, source: str, started: float, **fields: object) -> None:
    path = str(fields.pop("path", ""))
    history.record(event, uid=uid or posixpath.basename(parse_uri(source).path), path=path,
                   peer=redact(source, drop_user=True), seconds=time.monotonic() - started, **fields)
