"""The downloader: fetch each announced file or object to a local directory, announce the copy.

For each ``file``, ``dataset`` or ``collection`` message on the subscribed topics, every
announced ``uri`` is fetched with its scheme's mover ``get`` (atomic: a hidden temporary
name, then a rename) into ``download_destination``, keeping its name. When every file of the
message is here, a message of the same type is published on ``publish-topic`` with the same
metadata, each ``uri`` replaced by the local path and each ``uid`` by the local name; keys
that described the remote copy (``filesystem``, ``path``) are dropped, and so are
``request_address`` and ``destination``: a client would take the copy's announcement for a
server's.

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
import threading
import time
from collections.abc import Iterable
from typing import Any

from posttroll.message import Message

from trollmoves_core.checksum import from_data
from trollmoves_core.exceptions import TransferError, UnknownPluginError
from trollmoves_core.logs import file_size, log_transfer
from trollmoves_core.plugins import PluginHost
from trollmoves_core.uri import parse_uri, redact
from trollmoves_roles.bus.posttroll import NameserverLookup
from trollmoves_roles.bus.transport import Publisher, Subscriber
from trollmoves_roles.downloader.config import DownloaderConfig, load_config
from trollmoves_roles.observe.metrics import RoleMetrics
from trollmoves_roles.protocol.messages import FILE_TYPES, REMOVED_ON_PUBLISH, BadMessage, file_entries
from trollmoves_roles.runtime.listening import ListeningService
from trollmoves_roles.runtime.transports import transport_for
from trollmoves_roles.state.pending import PendingMessage, PendingMessages
from trollmoves_roles.transfers.movers import MoverCache
from trollmoves_roles.transfers.pool import BoundedPool

LOG = logging.getLogger(__name__)

REMOTE_ONLY_KEYS = ("filesystem", "path", *REMOVED_ON_PUBLISH)
"""Keys that describe the remote copy (pytroll-watchers' ``filesystem`` and ``path``), wrong for
the local one, and the keys no copy's announcement may carry (``request_address``...)."""
RESTART_KEYS = {"publish_port": "publish_port", "nameservers": "nameservers",
                "parallel_downloads": "parallel_downloads"}
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
                 metrics: RoleMetrics | None = None) -> None:
        self.config = config
        self.host = host
        self.publisher = publisher
        self.extra_addresses = list(addresses)
        self.nameservers_override = None if nameservers is None else list(nameservers)
        self.movers = MoverCache(self.host)
        self.transport = transport_for(host)
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

    def _submit(self, message: Message, sources: list[tuple[str, str]], halt: threading.Event | None,
                done: dict[str, Any] | None = None) -> bool:
        key = self.pending.add(message, [*(announced for announced, _ in sources), ANNOUNCED], done)
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
                 sum(1 for a, _ in sources if _still_here(item.done.get(a))), len(sources))
        return self._submit(item.message, sources, halt, item.done)

    def plan(self, message: Message) -> list[tuple[str, str]]:
        """``(announced uri, uri to fetch)`` for each file of ``message`` this downloader wants."""
        sources = []
        for entry in file_entries(message.type, message.data):
            announced = str(entry["uri"])
            source = self.source_uri(announced)
            if source is None:
                LOG.info("Skipping %s: not in bucket %s", redact(announced), self.config.bucket)
                continue
            try:
                self.host.mover_class(source)
            except UnknownPluginError as err:  # a bad message, not a failed download
                raise BadMessage(f"cannot fetch {redact(source)}: {err}") from None
            sources.append((announced, source))
        return sources

    def source_uri(self, uri: str) -> str | None:
        """Where to fetch ``uri`` from; None when it is outside the configured bucket."""
        bucket = self.config.bucket
        try:
            location = parse_uri(uri)
        except ValueError as err:
            raise BadMessage(str(err)) from None
        if bucket and "://" not in uri:
            return f"s3://{bucket}/{posixpath.basename(location.path)}"
        if bucket and location.scheme == "s3" and location.host != bucket:
            return None
        return uri

    def fetch(self, message: Message, sources: list[tuple[str, str]], *, key: str | None = None,
              done: dict[str, Any] | None = None) -> bool:
        """Download every file of ``message``, then announce them. Returns whether all arrived.

        ``key`` and ``done`` come from the journal: files fetched by an earlier run that are still
        here are not fetched again.
        """
        key = key if key is not None else PendingMessages.key_of(message.encode())
        config = self.config
        local: dict[str, str] = {}  # announced URI -> local path (str: no pathlib per file)
        destination = str(config.download_destination).rstrip("/") + "/"
        uids = _uids(message)
        expected = {str(entry["uri"]): from_data(entry) for entry in file_entries(message.type, message.data)}
        for announced, source in sources:
            earlier = (done or {}).get(announced)
            if _still_here(earlier):
                local[announced] = earlier
                continue
            scheme = parse_uri(source).scheme
            started = time.monotonic()
            try:
                mover = self.movers.get(source, config.params_for(scheme))
                # a copy that is not what was announced is discarded and fetched again by the mover
                local[announced] = mover.get(source, destination, expected=expected.get(announced))
            except TransferError as err:
                self._count(failed=True)
                LOG.error("Download failed, message on %s skipped: %s", message.subject, err)
                self.pending.finish(key)
                return False
            except Exception as err:  # a mover bug: report it the same way, keep serving
                self._count(failed=True)
                LOG.error("Download of %s failed, message on %s skipped: %s: %s", redact(source), message.subject,
                          type(err).__name__, err)
                self.pending.finish(key)
                return False
            seconds = time.monotonic() - started
            size = file_size(local[announced])
            self._count(failed=False, size=size, seconds=seconds)
            self.pending.done(key, announced, local[announced])
            log_transfer(LOG, uid=uids.get(announced) or os.path.basename(local[announced]), source=redact(source),
                         destination=local[announced], nbytes=size, seconds=seconds)
        self._announce(message, local)
        self.pending.done(key, ANNOUNCED)
        return True

    def _announce(self, message: Message, local: dict[str, str]) -> None:
        if self.publisher is None:
            return
        data = _rewrite(message.data, local)
        try:
            self.publisher.send(Message(self.config.publish_topic, message.type, data))
        except Exception as err:  # the files are here; a publishing problem must not hide that
            LOG.error("Cannot announce %s: %s", ", ".join(local.values()), err)
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


def _rewrite(data: Any, local: dict[str, str]) -> Any:
    """Copy ``data`` with each downloaded ``uri`` (at any depth) pointing at its local copy."""
    if isinstance(data, list):
        return [_rewrite(item, local) for item in data]
    if not isinstance(data, dict):
        return data
    result = {k: _rewrite(v, local) for k, v in data.items() if k not in REMOTE_ONLY_KEYS}
    uri = data.get("uri")
    if isinstance(uri, str) and uri in local:
        result["uri"] = local[uri]
        result["uid"] = os.path.basename(local[uri])
    return result
