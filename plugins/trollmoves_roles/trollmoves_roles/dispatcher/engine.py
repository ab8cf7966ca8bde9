"""The dispatcher: push announced local files to every matching target.

For each ``file``, ``dataset`` or ``collection`` message, every announced file is checked
against every target's ``dispatch_configs``; each match becomes one transfer (the same
source and destination only once per message) run on a bounded pool. After a successful
transfer the dispatcher publishes a ``file`` message on the target's ``publish_topic`` with
the original metadata, ``uri`` set to the delivered path (or URL, with ``publish_uri: url``)
and ``uid`` to the delivered name, without the keys describing the source (``filesystem``,
``path``, ``request_address``, ``destination``: :mod:`trollmoves_roles.protocol.copies`).
A failed transfer is logged with its destination and cause after the mover's own retries
(``retries``, ``retry_delay`` in ``connection_parameters``).

With a journal (``--state-directory``), each message with transfers is recorded until every one
of its transfers has run (delivered or failed); a restarted dispatcher runs the ones not done
yet and never repeats a delivered one (:mod:`trollmoves_roles.state.pending`).

Each delivered file is logged with :func:`~trollmoves_core.logs.log_transfer` and counted in the
metrics (:class:`~trollmoves_roles.observe.metrics.RoleMetrics`, labelled with the target's name as
``chain``); the sender of every message received (heartbeats included) is a peer whose last
message's age the metrics show.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import posixpath
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from posttroll.message import Message
from trollsift import compose

from trollmoves_core.bwlimit import Limits, host_of
from trollmoves_core.checksum import DEFAULT_METHOD, file_digest, from_data
from trollmoves_core.exceptions import ConfigError, TransferError
from trollmoves_core.logs import log_transfer
from trollmoves_core.plugins import PluginHost
from trollmoves_core.uri import parse_uri, redact
from trollmoves_roles.bus.posttroll import NameserverLookup
from trollmoves_roles.bus.security import CurveClient
from trollmoves_roles.bus.transport import Publisher
from trollmoves_roles.dispatcher.config import DispatcherConfig, DispatchItem, Target, load_config
from trollmoves_roles.observe.metrics import RoleMetrics
from trollmoves_roles.protocol.copies import Copy, copy_data
from trollmoves_roles.protocol.messages import FILE_TYPES, BadMessage, file_entries, local_path
from trollmoves_roles.runtime.listening import ListeningService
from trollmoves_roles.runtime.observers import ChainObservers
from trollmoves_roles.runtime.transports import transport_for
from trollmoves_roles.state import history
from trollmoves_roles.state.pending import PendingMessage, PendingMessages
from trollmoves_roles.transfers.movers import MoverCache
from trollmoves_roles.transfers.pool import BoundedPool

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dispatch:
    """One file to push to one destination."""

    target: Target
    source: str
    destination: str
    metadata: dict[str, Any]
    fields: dict[str, Any]


class Dispatcher(ListeningService):
    """Serve one dispatcher configuration until stopped (:meth:`serve`).

    :param config_path: the YAML file; re-read when it changes (see :meth:`request_reload`).
    :param publisher: where to announce delivered files; None publishes nothing.
    :param addresses: publisher addresses to subscribe to, besides the config's.
    :param nameservers: nameservers to ask for publishers, replacing the config's when given.
    :param workers: transfers running at once.
    :param host: the plugins whose movers (and config watcher) to use.
    :param metrics: where to count (a fresh :class:`RoleMetrics` when not given).
    :param state_directory: where the targets' observers keep their state (``--state-directory``),
        given to them as the ``state_directory`` key; None keeps it in memory.
    """

    def __init__(self, config_path: str | os.PathLike[str], *, publisher: Publisher | None = None,
                 addresses: Iterable[str] = (), nameservers: Iterable[str] | None = None, workers: int = 4,
                 host: PluginHost, watch: bool = True, pending: PendingMessages | None = None,
                 metrics: RoleMetrics | None = None, bus: str | None = None,
                 state_directory: str | os.PathLike[str] | None = None) -> None:
        self.config_path = os.fspath(config_path)
        self.state_directory = state_directory
        self.host = host
        self.publisher = publisher
        self.extra_addresses = list(addresses)
        self.nameservers_override = None if nameservers is None else list(nameservers)
        self.config: DispatcherConfig = load_config(self.config_path, self.host)
        self.movers = MoverCache(self.host)
        self.limits = Limits()
        """The bandwidth buckets of the targets and destination hosts."""
        self.transport = transport_for(host, bus)
        self.pool = BoundedPool(workers, name="dispatch")
        self.pending = pending if pending is not None else PendingMessages()
        self.metrics = metrics if metrics is not None else RoleMetrics("dispatcher")
        self.metrics.set_queue_length(lambda: self.pool.pending)
        self.received = 0
        """Messages received so far (any type), for monitoring and tests."""
        self.handled = 0
        """File, dataset and collection messages handled so far (their transfers queued)."""
        self.delivered = 0
        self.failed = 0
        self._counter_lock = threading.Lock()
        self._missing_topic_warned: set[str] = set()
        self.observers: dict[str, tuple[tuple[tuple[str, str], ...], ChainObservers]] = {}
        """Target name → its observer keys and the observers opened from them (a refusal at start exits 2)."""
        self._open_observers(self.config, strict=True)
        self.watch_config(self.host, watch)

    # -- what the loop (ListeningService.serve) needs -------------------------------------

    def _load(self) -> DispatcherConfig:
        return load_config(self.config_path, self.host)

    def _apply(self, config: DispatcherConfig) -> None:
        if config.subscriber.curve != self.config.subscriber.curve:
            LOG.warning("%s: posttroll_subscriber CURVE keys changed; they take effect at the next restart",
                        self.config_path)
        self.config = config
        self._open_observers(config, strict=False)
        self._missing_topic_warned.clear()
        LOG.info("Configuration %s reloaded: targets %s", self.config_path,
                 ", ".join(t.name for t in config.targets))

    def _open_observers(self, config: DispatcherConfig, *, strict: bool) -> None:
        """Keep the observers of unchanged targets, close the others', open the new targets'."""
        wanted = {target.name: target.observer_keys for target in config.targets if target.observer_keys}
        for name in [n for n, (keys, _) in self.observers.items() if wanted.get(n) != keys]:
            self.observers.pop(name)[1].close()
        for name, keys in wanted.items():
            if name in self.observers:
                continue
            opened = dict(keys)
            if self.state_directory:
                opened.setdefault("state_directory", os.fspath(self.state_directory))
            try:
                self.observers[name] = (keys, ChainObservers.open(self.host, opened, role="dispatcher",
                                                                  chain=name, file=config.file))
            except ConfigError as err:
                if strict:
                    self.close_observers()
                    raise
                LOG.error("Target %s announces nothing to its observers: %s", name, err)

    def close_observers(self) -> None:
        for _, observers in self.observers.values():
            observers.close()
        self.observers.clear()

    def serve(self, halt: threading.Event) -> None:
        try:
            super().serve(halt)
        finally:
            self.close_observers()

    def _topics(self) -> list[str]:
        return list(self.config.topics)

    def _addresses(self) -> list[str]:
        return list(dict.fromkeys([*self.config.subscriber.addresses, *self.extra_addresses]))

    def _curve(self) -> CurveClient | None:
        return self.config.subscriber.curve

    def _lookup(self) -> NameserverLookup:
        nameservers = self.nameservers_override
        if nameservers is None:
            nameservers = list(self.config.subscriber.nameservers)
        return NameserverLookup(nameservers, self.config.subscriber.services)

    # -- one message ----------------------------------------------------------------------

    def handle(self, message: Message, halt: threading.Event | None = None) -> int:
        """Queue the transfers ``message`` asks for; return how many. Never raises."""
        with self._counter_lock:
            self.received += 1
        if message.type not in FILE_TYPES:
            LOG.debug("Ignoring %s message on %s", message.type, message.subject)
            return 0
        try:
            return self._queue(message, halt)
        finally:
            with self._counter_lock:
                self.handled += 1

    def _queue(self, message: Message, halt: threading.Event | None) -> int:
        try:
            transfers = self.plan(message)
        except BadMessage as err:
            self.metrics.bad_input.inc()
            LOG.warning("Skipping message on %s: %s", message.subject, err)
            return 0
        except Exception:  # a surprise in one message must not stop the dispatcher
            LOG.exception("Skipping message on %s", message.subject)
            return 0
        return self._submit(message, transfers, halt)

    def _submit(self, message: Message, transfers: list[Dispatch], halt: threading.Event | None,
                done: dict[str, Any] | None = None) -> int:
        if not transfers:
            return 0
        key = self.pending.add(message, [_part(t) for t in transfers], done)
        queued = 0
        for transfer in transfers:
            if not self.pool.submit(lambda t=transfer: self._run_part(key, t), halt):
                break  # stopping: the rest stays in the journal for the next start
            self.metrics.requested.inc(chain=transfer.target.name)
            queued += 1
        return queued

    def _run_part(self, key: str, transfer: Dispatch) -> None:
        delivered = self.run_transfer(transfer)
        self.pending.done(key, _part(transfer), delivered)

    def _resume(self, item: PendingMessage, halt: threading.Event | None) -> int:
        """Run the transfers of an unfinished message that the killed run had not done."""
        try:
            transfers = [t for t in self.plan(item.message) if _part(t) not in item.done]
        except Exception as err:  # the file is gone or the config changed: nothing left to do
            LOG.warning("Not resuming a message on %s: %s", item.message.subject, err)
            transfers = []
        if not transfers:
            self.pending.finish(item.key)
            return 0
        LOG.info("Resuming %d transfer(s) of a message on %s", len(transfers), item.message.subject)
        return self._submit(item.message, transfers, halt, item.done)

    def plan(self, message: Message) -> list[Dispatch]:
        """The transfers ``message`` asks for under the current configuration."""
        config = self.config
        transfers: list[Dispatch] = []
        seen: set[tuple[str, str]] = set()
        for entry in file_entries(message.type, message.data):
            matching = [(target, item) for target in config.targets for item in target.items
                        if item.matches(message.subject, entry)]
            if not matching:
                LOG.debug("No target for %s", entry["uri"])
                continue
            try:
                source = local_path(str(entry["uri"]))
            except BadMessage as err:
                LOG.warning("Skipping %s from %s: %s", redact(str(entry["uri"])), message.subject, err)
                continue
            if not os.path.isfile(source):
                LOG.warning("Skipping %s from %s: no such file here", source, message.subject)
                continue
            fields = dict(entry)
            fields["file_creation_time"] = _creation_time(source)
            for target, item in matching:
                target_fields = dict(fields)
                for alias in target.aliases:
                    alias.apply(target_fields)
                try:
                    destination = compose_destination(item, target_fields, source)
                except (KeyError, ValueError, TypeError) as err:
                    LOG.error("Cannot dispatch %s to target %s: composing the destination failed: %s",
                              source, target.name, _describe_compose_error(err))
                    continue
                if (source, destination) in seen:
                    continue
                seen.add((source, destination))
                transfers.append(Dispatch(target, source, destination, entry, target_fields))
        return transfers

    def run_transfer(self, transfer: Dispatch) -> bool:
        """Push one file and announce it; log failures. Returns whether it was delivered."""
        target = transfer.target
        shown = redact(transfer.destination)
        started = time.monotonic()
        try:
            size = os.path.getsize(transfer.source)
            mover = self.movers.get(transfer.destination, target.connection_parameters)
            # the source checked against the announced size (and checksum, where the mover hashes)
            throttle = self.limits.throttle([(("target", target.name), target.bwlimit),
                                             (("host", host_of(transfer.destination)), target.bwlimit_per_host)])
            delivered = mover.put(transfer.source, transfer.destination, expected=from_data(transfer.metadata),
                                  progress=throttle)
        except (TransferError, OSError) as err:
            self._count(target, failed=True)
            LOG.error("Dispatching %s to target %s (%s) failed: %s", transfer.source, target.name, shown, err)
            _record("dispatch failed", transfer, started, detail=str(err))
            return False
        except Exception as err:  # a mover bug: report it the same way, keep serving
            self._count(target, failed=True)
            LOG.error("Dispatching %s to target %s (%s) failed: %s: %s", transfer.source, target.name, shown,
                      type(err).__name__, err)
            _record("dispatch failed", transfer, started, detail=f"{type(err).__name__}: {err}")
            return False
        seconds = time.monotonic() - started
        self._count(target, failed=False, size=size, seconds=seconds)
        _record("dispatched", transfer, started, destination=delivered, size=size)
        log_transfer(LOG, uid=str(transfer.metadata.get("uid") or os.path.basename(transfer.source)),
                     source=redact(transfer.source), destination=redact(delivered), nbytes=size, seconds=seconds)
        self._announce(transfer, delivered)
        self._observe(transfer, delivered)
        return True

    def _announce(self, transfer: Dispatch, delivered: str) -> None:
        if self.publisher is None:
            return
        target = transfer.target
        if not target.publish_topic:
            if target.name not in self._missing_topic_warned:
                self._missing_topic_warned.add(target.name)
                LOG.error("Target %s has no publish_topic: its deliveries are not announced", target.name)
            return
        try:
            topic = compose(target.publish_topic, transfer.fields)
        except (KeyError, ValueError, TypeError) as err:
            LOG.error("Cannot announce %s: publish_topic of target %s: %s", delivered, target.name,
                      _describe_compose_error(err))
            return
        path = parse_uri(delivered).path
        copy = Copy(uri=path if target.publish_uri == "path" else delivered, uid=posixpath.basename(path))
        data = copy_data(transfer.metadata, {str(transfer.metadata["uri"]): copy})
        try:
            self.publisher.send(Message(topic, "file", data))
        except Exception as err:  # a bad topic must not undo a delivery
            LOG.error("Cannot announce %s on %r: %s", redact(delivered), topic, err)
            return
        self.metrics.announced.inc(chain=target.name)

    def _observe(self, transfer: Dispatch, delivered: str) -> None:
        """Tell the target's observers (in this worker thread, which may read the source)."""
        found = self.observers.get(transfer.target.name)
        if found is None:
            return
        observers = found[1]
        path = parse_uri(delivered).path
        data = copy_data(transfer.metadata, {str(transfer.metadata["uri"]): Copy(uri=path,
                                                                                 uid=posixpath.basename(path))})
        if from_data(data) is None:  # the delivered copy is the source's bytes: measure those
            try:
                data.update(file_digest(transfer.source, DEFAULT_METHOD).as_data())
            except OSError as err:
                LOG.error("Target %s: cannot hash %s for its observers: %s", transfer.target.name, transfer.source,
                          err)
                return
        observers.delivered(transfer.target.publish_topic or "", "file", data)

    def _count(self, target: Target, *, failed: bool, size: int = 0, seconds: float = 0.0) -> None:
        with self._counter_lock:
            if failed:
                self.failed += 1
            else:
                self.delivered += 1
        if failed:
            self.metrics.failed.inc(chain=target.name)
        else:
            self.metrics.delivered.inc(chain=target.name)
            self.metrics.bytes.inc(size, chain=target.name)
            self.metrics.duration.observe(seconds, chain=target.name)


def _record(event: str, transfer: Dispatch, started: float, *, destination: str | None = None,
            **fields: object) -> None:
    history.record(event, chain=transfer.target.name, uid=str(transfer.metadata.get("uid") or ""),
                   path=transfer.source, destination=redact(destination or transfer.destination, drop_user=True),
                   seconds=time.monotonic() - started, **fields)


def _part(transfer: Dispatch) -> str:
    """A transfer's name in the journal (a hash: the destination may hold credentials)."""
    text = f"{transfer.target.name}\0{transfer.source}\0{transfer.destination}"
    return hashlib.sha256(text.encode(errors="replace")).hexdigest()[:32]


def compose_destination(item: DispatchItem, fields: dict[str, Any], source: str) -> str:
    """The destination URL (credentials kept) for one file under one dispatch item."""
    name = compose(item.filepattern, fields) if item.filepattern else os.path.basename(source)
    path = posixpath.join(compose(item.directory, fields), name) if item.directory else name
    if not item.host:
        return path
    parts = urlsplit(item.host)
    if not path.startswith("/"):
        path = "/" + path
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _creation_time(path: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(os.stat(path).st_ctime)


def _describe_compose_error(err: BaseException) -> str:
    if isinstance(err, KeyError):
        return f"the message has no field {err.args[0]!r}"
    return f"{type(err).__name__}: {err}"
