"""One mirror section running in its own event-loop thread.

It subscribes to the section's providers (internal servers), re-announces each new file on
the mirror's publisher under the section's ``topic`` with the mirror's own
``request_address`` (after ``delay`` seconds when set), and serves external requests on its
``request_port``. The data of a re-announcement is the internal announcement's, with the
``info`` keys added where missing and ``request_address`` replaced. The same file announced by
several internal servers is re-announced once; those servers become fallback sources. With
``compression``, each new file is fetched and unpacked first, and the unpacked file(s) are
announced instead (:mod:`trollmoves_roles.mirror.unpacking`).

All state (registry, fetches, request socket, subscriptions, requester) lives in the loop
thread; other threads talk to it through :meth:`EventLoop.call_soon_threadsafe`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from posttroll.message import Message

from trollmoves_core.exceptions import ConfigError
from trollmoves_roles.bus.listener import ProviderListener
from trollmoves_roles.bus.loop import EventLoop
from trollmoves_roles.bus.transport import MessageTransport, Publisher
from trollmoves_roles.mirror.config import MirrorConfig
from trollmoves_roles.mirror.registry import Entry, ReannouncedFiles, uri_path
from trollmoves_roles.mirror.requests import RequestSocket
from trollmoves_roles.mirror.staging import Fetch, Stager
from trollmoves_roles.mirror.unpacking import unpack_staged, unpacked_announcement
from trollmoves_roles.observe.metrics import RoleMetrics
from trollmoves_roles.observe.ratelimit import RateLimitedLog
from trollmoves_roles.protocol.messages import FILE_TYPES, MESSAGE_VERSION, dicts_with, transfer_key, uids_of
from trollmoves_roles.runtime.process import own_ip
from trollmoves_roles.transfers.service import TransferService

LOG = logging.getLogger(__name__)
_LIMITED = RateLimitedLog(LOG, period=10.0, burst=5)

DRAIN_CHECK = 0.05
"""Seconds between checks for pending work while stopping."""


class MirrorChain:
    """One section: subscriptions, re-announcements, fetches and the request socket."""

    def __init__(self, config: MirrorConfig, *, publisher: Publisher, transfers: TransferService,
                 transport: MessageTransport, bind: str = "*", bind_retry: float = 0.0,
                 metrics: RoleMetrics | None = None) -> None:
        self.config = config
        self.transport = transport
        self.metrics = metrics if metrics is not None else RoleMetrics("mirror")
        self.publisher = publisher
        self.request_address = f"{config.request_address or own_ip()}:{config.request_port}"
        self.loop = EventLoop(f"mirror {config.name}")
        self.registry = ReannouncedFiles()
        self.requester = transport.requester(self.loop, max_in_flight=config.client.max_requests_in_flight,
                                             security=config.client.request_curve)
        self.stager = Stager(config, self.loop, self.requester)
        self.requests = RequestSocket(config, self.loop, bind=bind, registry=self.registry, stager=self.stager,
                                      transfers=transfers, on_reply=self._after_reply, transport=transport,
                                      bind_retry=bind_retry, metrics=self.metrics)
        self.announced = 0
        self._listeners: list[ProviderListener] = []
        self._thread = threading.Thread(target=self._run, name=f"mirror-{config.name}", daemon=True)
        self._started = threading.Event()
        self._refused: ConfigError | None = None
        self._draining = False
        self._drain_deadline = 0.0
        self._closed = False
        self._unpacker: ThreadPoolExecutor | None = None

    @property
    def name(self) -> str:
        return self.config.name

    # -- life cycle (any thread) -------------------------------------------------------

    def start(self) -> MirrorChain:
        """Start the section's thread; ConfigError when the transport refuses its settings."""
        self._thread.start()
        self._started.wait(10)
        if self._refused is not None:
            err = self._refused
            raise err if err.section else ConfigError(err.message, section=self.name)
        return self

    def stop(self, drain_timeout: float = 30.0) -> None:
        """Stop taking requests and announcements; let pending pushes finish (up to ``drain_timeout`` s)."""
        self.begin_stop(drain_timeout)
        self.join(drain_timeout)

    def begin_stop(self, drain_timeout: float = 30.0) -> None:
        """Start stopping without waiting (to stop several sections at once); then :meth:`join`."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._drain, drain_timeout)

    def join(self, drain_timeout: float = 30.0) -> None:
        if not self._thread.is_alive():
            if not self._started.is_set():  # never started: nothing runs the loop's clean-up
                self._close()
            return
        self._thread.join(drain_timeout + 10)
        if self._thread.is_alive():
            LOG.error("[%s] mirror thread did not stop", self.name)

    def _run(self) -> None:
        try:
            self.requests.start()
            for provider in self.config.providers:
                self._listeners.append(ProviderListener(
                    self.loop, provider.address, self.config.topics_for(provider), self._on_message,
                    transport=self.transport, alarm_scale=self.config.client.heartbeat_alarm_scale, chain=self.name,
                    metrics=self.metrics, curve=self.config.client.subscribe_curve))
            LOG.info("[%s] mirroring %s as %s on %s", self.name, ", ".join(p.address for p in self.config.providers),
                     self.config.topic, self.request_address)
        except ConfigError as err:  # e.g. keys the bus cannot use: start() says it in the caller's thread
            self._refused = err
            self._close()
            return
        finally:
            self._started.set()
        try:
            self.loop.run()
        finally:
            self._close()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.requests.pending:
            LOG.warning("[%s] stopping with %d push(es) unanswered", self.name, self.requests.pending)
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        self.requester.close()
        self.requests.close()
        if self._unpacker is not None:
            self._unpacker.shutdown(wait=True)
        self.stager.close()

    # -- stopping (loop thread) --------------------------------------------------------

    def _drain(self, timeout: float) -> None:
        self._draining = True
        self._drain_deadline = time.monotonic() + timeout
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        self.requests.stop_reading()
        self._check_drained()

    def _after_reply(self) -> None:
        if self._draining:
            self._check_drained()

    def _check_drained(self) -> None:
        if self.requests.pending == 0 and self.requester.pending() == 0:
            self.loop.stop()
        elif time.monotonic() >= self._drain_deadline:
            LOG.warning("[%s] drain timeout: %d push(es) and %d internal request(s) still pending", self.name,
                        self.requests.pending, self.requester.pending())
            self.loop.stop()
        else:
            self.loop.call_later(DRAIN_CHECK, self._check_drained)

    # -- announcements (loop thread) ---------------------------------------------------

    def _on_message(self, message: Message) -> None:
        data = message.data
        if message.type not in FILE_TYPES or not isinstance(data, dict) or "request_address" not in data:
            return  # heartbeats, and the push/ack/result messages of clients sharing the provider
        address = data["request_address"]
        if not isinstance(address, str) or ":" not in address:
            self._bad_message("[%s] Skipping announcement with bad request_address %r", self.name, address)
            return
        if address == self.request_address:
            return  # our own re-announcement (a provider list that loops back to this mirror)
        uids = uids_of(data)
        uris = [uri_path(d["uri"]) for d in dicts_with(data, "uri")]
        if not uids or not uris:
            self._bad_message("[%s] Skipping announcement without uid/uri: %.200s", self.name, message.encode())
            return
        if not all(self.config.serves(path) for path in uris):
            LOG.debug("[%s] %s does not match origin; not mirrored", self.name, uris[0])
            return
        key = transfer_key(uids)
        entry = self.registry.get(key)
        if entry is not None:
            if entry.add_source(message):
                LOG.debug("[%s] %s also announced by %s", self.name, uids[0], address)
            return
        entry = Entry(key, uids, self.config.topic, [message], announced=not self.config.compression)
        self.registry.add(entry)
        if self.config.compression:
            self.stager.acquire(entry, lambda fetch, error: self._fetched_to_unpack(entry, fetch, error))
            return
        self._reannounce(message.type, data)

    def _reannounce(self, atype: str, data: dict[str, Any]) -> None:
        announcement = Message(self.config.topic, atype,
                               {**self.config.info, **data, "request_address": self.request_address},
                               version=MESSAGE_VERSION)
        if self.config.delay > 0:
            self.loop.call_later(self.config.delay, self._announce, announcement)
        else:
            self._announce(announcement)

    # -- compression (loop thread, unpacking in a worker) ---------------------------------

    def _fetched_to_unpack(self, entry: Entry, fetch: Fetch | None, error: str | None) -> None:
        if fetch is None:
            LOG.error("[%s] Not announcing %s: %s", self.name, entry.uids[0], error)
            return
        kind, program = self.config.compression, self.config.prog
        assert kind is not None
        base = os.path.dirname(fetch.directory)
        if self._unpacker is None:
            self._unpacker = ThreadPoolExecutor(1, thread_name_prefix=f"mirror-unpack-{self.name}")
        future = self._unpacker.submit(unpack_staged, list(fetch.files.values()), kind, program, base)
        future.add_done_callback(lambda f: self.loop.call_soon_threadsafe(self._unpacked, entry, fetch, f))

    def _unpacked(self, entry: Entry, fetch: Fetch, future: Future[tuple[str, list[str]]]) -> None:
        self.stager.release(fetch)  # acks the internal servers: the file is here
        self.stager.drop(fetch)
        error = future.exception()
        if error is not None:
            LOG.error("[%s] Not announcing %s: %s", self.name, entry.uids[0], error)
            return
        directory, files = future.result()
        atype, data = unpacked_announcement(entry.sources[0].data, files)
        uids = uids_of(data)
        unpacked = Entry(transfer_key(uids), uids, self.config.topic, entry.sources, unpacked=True)
        self.registry.add(unpacked)
        self.stager.adopt(unpacked, directory, {uid: path for uid, path in zip(uids, files, strict=True)},
                          fetch.source)
        LOG.info("[%s] Unpacked %s (%s) to %s", self.name, entry.uids[0], self.config.compression,
                 ", ".join(uids[:3]) + (", ..." if len(uids) > 3 else ""))
        self._reannounce(atype, data)

    def _announce(self, announcement: Message) -> None:
        try:
            self.publisher.send(announcement)
        except Exception as err:  # a publishing problem must not stop the section
            LOG.error("[%s] Cannot publish %s: %s", self.name, announcement.type, err)
            return
        self.announced += 1
        self.metrics.announced.inc(max(1, len(uids_of(announcement.data))), chain=self.name)
        LOG.debug("[%s] Announced %s", self.name, uids_of(announcement.data)[:1])

    def _bad_message(self, message: str, *args: object) -> None:
        self.metrics.bad_input.inc(chain=self.name)
        _LIMITED.warning(f"bad message:{self.name}", message, *args)
