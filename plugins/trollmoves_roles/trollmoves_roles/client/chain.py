"""One client chain: listen to providers, request each announced file once, deliver, publish.

:class:`ClientChain` runs in its own thread; all its state lives in that thread's event loop. A file
announced by several servers is fetched once (they become fallback sources) and every server
is acked once the file is delivered, here or by another client; a file given up is published
as an ``err`` message (:func:`failure_message`) and not acked. With ``state_directory`` the
:class:`~trollmoves_roles.client.state.ChainState` journal makes a restarted chain resume what
it had not delivered and never fetch again what it had, and ask the servers it journalled for what
they announced while it was down (within ``catch_up_window``). How a chain works, hot spare, retries
and reconciliation included: ``docs/roles/client.md``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from typing import Any

from posttroll.message import Message

from trollmoves_core.exceptions import ConfigError
from trollmoves_core.logs import file_size, log_transfer
from trollmoves_core.recent import RecentKeys, key_of
from trollmoves_core.uri import parse_uri, redact
from trollmoves_roles.bus.listener import ProviderListener
from trollmoves_roles.bus.loop import EventLoop, Timer
from trollmoves_roles.bus.posttroll import HEARTBEAT_INTERVAL, topic_prefix
from trollmoves_roles.bus.transport import MessageTransport, Publisher, Requester
from trollmoves_roles.client import verification
from trollmoves_roles.client.config import ClientChainConfig
from trollmoves_roles.client.state import REMEMBERED, ChainState, PendingFile, Unpublished
from trollmoves_roles.client.unpack import UnpackError, unpack_message
from trollmoves_roles.observe.metrics import RoleMetrics
from trollmoves_roles.observe.ratelimit import RateLimitedLog
from trollmoves_roles.protocol import delivery
from trollmoves_roles.protocol.codec import make_message
from trollmoves_roles.protocol.messages import (
    FILE_TYPES,
    dicts_with,
    is_local_host,
    message_type,
    transfer_key,
    uids_of,
)
from trollmoves_roles.runtime.observers import ChainObservers
from trollmoves_roles.state import history

LOG = logging.getLogger(__name__)

CACHE_SIZE = REMEMBERED
"""uids remembered per chain (upstream: 11,000 for all chains)."""

FIRST_HEARTBEAT = 1.0
"""Seconds from start to the first heartbeat (as upstream), so subscribers started with us get it."""

FAILURE_SUBJECT = "/trollmoves/client/failed"
"""Failures are published on ``<FAILURE_SUBJECT>/<chain>`` with type ``err``."""
FAILURE_TYPE = "err"

RECONCILE_COUNT = 1000
"""Announcements asked for per server and reconciliation."""
FORGET_SERVERS_AFTER = 7 * 86400.0
"""Seconds after which a journalled server that neither announced nor answered is forgotten at start."""
SEEN_EVERY = 600.0
"""Seconds between journal writes of a server's ``seen`` time while its listing has nothing new."""
CLOCK_MARGIN = 60.0
"""Seconds of clock difference allowed between servers and us when comparing announcement times."""

_SUCCESS = frozenset(FILE_TYPES)
_LIMITED = RateLimitedLog(LOG, period=10.0, burst=5)


class TransferState(Enum):
    """Where a :class:`Transfer` stands (in memory only; the journal has its own states)."""

    NEW = "new"
    DELAYED = "delayed"
    """Waiting ``processing_delay`` (hot spare)."""
    ACTIVE = "active"
    """Requesting from a source."""
    OTHER = "other"
    """Another client is fetching it."""
    WAITING = "waiting"
    """Every source failed; retrying later."""
    FINISHING = "finishing"
    """Delivered, unpacking."""


_NOT_MINE = (TransferState.DELAYED, TransferState.OTHER, TransferState.NEW, TransferState.WAITING)
"""States in which another client's delivery settles a transfer (none of ours is in flight)."""


class UidCache:
    """The most recent ``size`` uids, oldest forgotten first (membership only: the uids are
    kept as 128-bit keys, see :mod:`trollmoves_core.recent`)."""

    def __init__(self, size: int = CACHE_SIZE, initial: Iterable[str] = ()) -> None:
        self.size = size
        self._keys = RecentKeys(None, size)
        for uid in initial:
            self.add(uid)

    def add(self, uid: str) -> None:
        self._keys.add(key_of(uid))

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, str) and key_of(uid) in self._keys

    def __len__(self) -> int:
        return len(self._keys)


@dataclass(eq=False, slots=True)
class Transfer:
    """One file (or dataset) being fetched, with every server that announced it."""

    key: str
    uids: list[str]
    sources: list[Message] = field(default_factory=list)
    state: TransferState = TransferState.NEW
    tried: list[str] = field(default_factory=list)
    """Request addresses tried in this round."""
    current: Message | None = None
    acked_by_other: bool = False
    timer: Timer | None = None
    started: float = field(default_factory=time.monotonic)
    requested: float = 0.0
    """When the current push request was sent (monotonic): the transfer duration's start."""
    since: float = field(default_factory=time.time)
    """Wall-clock time of the first announcement (kept across restarts): the give-up clock."""
    rounds: int = 0
    """Retry rounds done (each tries every source)."""
    last_error: str = ""
    redeliver: str = ""
    """Why the last delivered copy was found bad: sent with the next push, so the server transfers again."""

    def add_source(self, message: Message) -> bool:
        return delivery.add_source(self.sources, message)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def _valid_address(address: object) -> bool:
    if not isinstance(address, str):
        return False
    host, _, port = address.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536 and not any(c.isspace() for c in host)


class ClientChain:
    """A client chain running in its own thread. ``publisher`` may be shared with other chains."""

    def __init__(self, config: ClientChainConfig, publisher: Publisher, *, transport: MessageTransport,
                 cache: UidCache | None = None, state: ChainState | None = None,
                 metrics: RoleMetrics | None = None, observers: ChainObservers | None = None) -> None:
        self.config = config
        self.observers = observers if observers is not None else ChainObservers()
        """Told about each delivered file once its result is published; closed with the chain."""
        self.transport = transport
        self.metrics = metrics if metrics is not None else RoleMetrics("client")
        self.publisher = publisher
        self.state = state if state is not None else ChainState()
        self.metrics.set_pending(config.name, self.queue_length)
        self.cache = cache if cache is not None else UidCache(initial=self.state.delivered_uids())
        self.transfers: dict[str, Transfer] = {}
        self._waiting: dict[str, Transfer] = {}
        """Transfers put in a retry wait (some may have left it since: checked on use), so that a
        delivery looks only at them, not at every transfer of a burst."""
        self.delivered = 0
        self.failed = 0
        self.resumed = 0
        self.reconciled = 0
        """Files requested because reconciliation found them, not the bus."""
        self._started_at = time.time()
        self._servers: dict[str, str] = {}
        """Request address -> subject of its latest announcement: whom reconciliation asks."""
        self._known_before: set[str] = set()
        """Servers journalled by an earlier run: what they announced since our horizon is our business."""
        self._after: dict[str, float] = {}
        """Request address -> server time of the newest listed announcement seen: where its listing is read on."""
        for address, (subject, after) in self.state.servers(self._started_at - FORGET_SERVERS_AFTER).items():
            self._servers[address] = subject
            self._known_before.add(address)
            if after is not None:
                self._after[address] = after
        self.lost = 0
        """Files announced more than ``catch_up_window`` before this start, missed while we were down."""
        self._lost_by: dict[str, int] = {}
        self._gap_logged: set[str] = set()
        self._without_listing: set[str] = set()
        self._asking: set[str] = set()
        """Servers with an ``info`` request in flight: one at a time, so pages and notices are never doubled."""
        self._seen_written: dict[str, float] = {}
        """Request address -> when (monotonic) its journal record was last written."""
        self._given_up = UidCache(size=CACHE_SIZE)
        self._horizon = self.state.horizon()
        self._loop = EventLoop(f"client chain {config.name}")
        self._thread = threading.Thread(target=self._run, name=f"client-{config.name}", daemon=True)
        self._started = threading.Event()
        self._refused: ConfigError | None = None
        self._listeners: list[ProviderListener] = []
        self._requester: Requester | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._takeover_after = (max(config.processing_delay, 1.0)
                                + config.transfer_req_timeout * config.request_attempts + 2.0)

    # -- life cycle (any thread) -------------------------------------------------------

    def start(self) -> ClientChain:
        """Start the chain's thread; ConfigError when the transport refuses its settings."""
        self._thread.start()
        self._started.wait(10)
        if self._refused is not None:
            err = self._refused
            raise err if err.section else ConfigError(err.message, file=self.config.file, section=self.name)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._loop.stop()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def name(self) -> str:
        return self.config.name

    def queue_length(self) -> int:
        """Files announced and not settled yet (any thread; approximate while the chain runs)."""
        return len(self.transfers)

    def _run(self) -> None:
        try:
            self._requester = self.transport.requester(self._loop, max_in_flight=self.config.max_requests_in_flight,
                                                       security=self.config.request_curve)
            # read before subscribing: what arrives from now on is this run's
            unpublished, pending = self.state.unpublished(), self.state.pending()
            for provider in self.config.providers:
                self._listeners.append(ProviderListener(
                    self._loop, provider.address, self.config.topics_for(provider), self._on_message,
                    transport=self.transport, alarm_scale=self.config.heartbeat_alarm_scale, chain=self.name,
                    on_recovered=self._reconcile, metrics=self.metrics, curve=self.config.subscribe_curve))
            self._loop.call_later(FIRST_HEARTBEAT, self._heartbeat)
            # after the subscribers that were connected before the restart are back (zmq retries every 0.1 s)
            self._loop.call_later(FIRST_HEARTBEAT, self._resume, unpublished, pending)
            if self.config.reconcile_interval > 0:
                self._loop.call_later(min(self.config.reconcile_interval, 5.0), self._reconcile_regularly)
        except ConfigError as err:  # e.g. keys the bus cannot use: start() says it in the caller's thread
            self._refused = err
            self._shutdown()
            return
        finally:
            self._started.set()
        try:
            self._loop.run()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        unfinished = [t for t in self.transfers.values() if t.state in (TransferState.ACTIVE, TransferState.FINISHING)]
        if unfinished:
            LOG.warning("[%s] Stopping with %d transfer(s) unfinished", self.name, len(unfinished))
        for listener in self._listeners:
            listener.close()
        if self._requester is not None:
            self._requester.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self.observers.close()
        self.state.close()

    def _resume(self, unpublished: list[Unpublished], pending: list[PendingFile]) -> None:
        """Publish results a killed run delivered but may not have published; request pending files again."""
        for item in unpublished:
            self._publish(make_message(item.subject, item.atype, item.data))
            self.observers.delivered(item.subject, item.atype, item.data)
            self.metrics.announced.inc(_file_count(item.data), chain=self.name)
            self.state.published(item.key)
            LOG.info("[%s] Published the result of %s delivered before the restart", self.name,
                     item.data.get("uid", item.key))
        resumed = 0
        for item in pending:
            if item.key in self.transfers:
                continue
            transfer = Transfer(item.key, uids_of(item.sources[0].data), since=item.since)
            for source in item.sources:
                transfer.add_source(source)
            if not transfer.uids:
                self.state.forget(item.key)
                continue
            self.transfers[item.key] = transfer
            self.resumed += 1
            resumed += 1
            for source in transfer.sources:
                self._remember_server(source.data["request_address"], source.subject)
            if all(uid in self.cache for uid in transfer.uids):
                self._settle(transfer, ack=transfer.sources)
            elif self.config.processing_delay > 0:
                transfer.state = TransferState.DELAYED
                transfer.timer = self._loop.call_later(self.config.processing_delay, self._delay_over, transfer)
            else:
                self._start(transfer)
        if resumed:
            LOG.info("[%s] Resuming %d file(s) announced but not delivered before the restart", self.name, resumed)
        if self.state.enabled and self.config.catch_up_window > 0 and self._servers:
            LOG.info("[%s] Asking %d server(s) for what they announced while we were down: %s", self.name,
                     len(self._servers), ", ".join(sorted(self._servers)))
            self._reconcile(force=True)

    def _heartbeat(self) -> None:
        self._publish(make_message(f"/heartbeat/move_it_{self.name}", "beat", {"min_interval": HEARTBEAT_INTERVAL}))
        self._loop.call_later(HEARTBEAT_INTERVAL, self._heartbeat)

    # -- incoming messages -------------------------------------------------------------

    def _on_message(self, message: Message) -> None:
        if message.type == "beat":
            return
        if not isinstance(message.data, dict):
            if message.type in ("push", "ack", *_SUCCESS):
                self._bad_message("[%s] Skipping %s message without a data mapping: %.200s", self.name,
                                  message.type, message.encode())
            return
        if message.type in _SUCCESS and "request_address" in message.data:
            self._on_announcement(message)
        elif message.type == "push":
            self._on_other_started(message)
        elif message.type == "ack":
            self._on_other_acked(message)
        elif message.type in _SUCCESS:  # another client's delivered result
            self._on_other_started(message)
            self._on_other_done(message)
        else:
            LOG.debug("[%s] Ignoring %s message", self.name, message.type)

    def _on_announcement(self, message: Message) -> None:
        uids = uids_of(message.data)
        if not uids or not any(True for _ in dicts_with(message.data, "uri")):
            self._bad_message("[%s] Skipping announcement without uid/uri: %.200s", self.name, message.encode())
            return
        address = message.data["request_address"]
        if not _valid_address(address):
            self._bad_message("[%s] Skipping announcement with bad request_address %r", self.name, address)
            return
        self._remember_server(address, message.subject)
        key = transfer_key(uids)
        transfer = self.transfers.get(key)
        if transfer is not None:
            if transfer.add_source(message):
                LOG.debug("[%s] %s also announced by %s", self.name, uids[0], address)
            elif _replace_changed(transfer.sources, message):
                LOG.info("[%s] %s was announced again by %s with another checksum (changed): fetching the new "
                         "one", self.name, uids[0], address)
            else:
                return
            self.state.announced(key, transfer.sources, transfer.since)
            if transfer.state is TransferState.WAITING:  # a new source: no need to wait for the retry
                transfer.cancel_timer()
                self._start(transfer)
            return
        if all(uid in self.cache for uid in uids):
            LOG.debug("[%s] %s already delivered; acking %s", self.name, uids[0], address)
            self._ack(message)
            return
        transfer = self.transfers[key] = Transfer(key, uids, [message])
        self.state.announced(key, transfer.sources, transfer.since)
        _record("received", self.name, uids, peer=address, detail=message.subject)
        if self.config.processing_delay > 0:
            transfer.state = TransferState.DELAYED
            transfer.timer = self._loop.call_later(self.config.processing_delay, self._delay_over, transfer)
        else:
            self._start(transfer)

    def _on_other_started(self, message: Message) -> None:
        uids = uids_of(message.data)
        if not uids:
            return
        key = transfer_key(uids)
        transfer = self.transfers.get(key)
        if transfer is None:
            if all(uid in self.cache for uid in uids):
                return
            transfer = self.transfers[key] = Transfer(key, uids)
        elif transfer.state not in (TransferState.DELAYED, TransferState.NEW):
            return
        transfer.cancel_timer()
        transfer.state = TransferState.OTHER
        LOG.debug("[%s] Another client is fetching %s", self.name, uids[0])
        transfer.timer = self._loop.call_later(self._takeover_after, self._takeover, transfer)

    def _on_other_acked(self, message: Message) -> None:
        """The other client got the file; its result message is what settles it here.

        A client killed between publishing ``ack`` and its result leaves a delivered file nobody
        announced: wait for the result, and fetch the file here if it never comes. With
        ``compression`` the result names the unpacked files and cannot be matched, so the ack
        settles the file, as upstream.
        """
        uids = uids_of(message.data)
        transfer = self.transfers.get(transfer_key(uids)) if uids else None
        if (self.config.compression or transfer is None
                or transfer.state not in (TransferState.DELAYED, TransferState.OTHER, TransferState.NEW)):
            self._on_other_done(message)
            return
        transfer.cancel_timer()
        transfer.state = TransferState.OTHER
        transfer.acked_by_other = True
        transfer.timer = self._loop.call_later(self._takeover_after, self._takeover, transfer)

    def _on_other_done(self, message: Message) -> None:
        uids = uids_of(message.data)
        if not uids:
            return
        for uid in uids:
            self.cache.add(uid)
        key = transfer_key(uids)
        transfer = self.transfers.get(key)
        if transfer is None or transfer.state in _NOT_MINE:
            self.state.delivered(key, uids)
        if transfer is not None and transfer.state in _NOT_MINE:
            transfer.cancel_timer()
            del self.transfers[transfer.key]
            LOG.debug("[%s] %s was delivered by another client", self.name, uids[0])
            _record("delivered elsewhere", self.name, uids, detail=message.type)
            self.metrics.progressed(self.name)

    # -- timers ------------------------------------------------------------------------

    def _delay_over(self, transfer: Transfer) -> None:
        transfer.timer = None
        if all(uid in self.cache for uid in transfer.uids):
            self._settle(transfer, ack=transfer.sources)
            return
        self._start(transfer)

    def _takeover(self, transfer: Transfer) -> None:
        transfer.timer = None
        if self.transfers.get(transfer.key) is not transfer:
            return
        if all(uid in self.cache for uid in transfer.uids) or not transfer.sources:
            self._settle(transfer, ack=())
            return
        what = "acked" if transfer.acked_by_other else "announced"
        missing = "publish its result" if transfer.acked_by_other else "ack it"
        LOG.warning("[%s] The other client %s %s but did not %s within %.0f s; fetching it here", self.name, what,
                    transfer.uids[0], missing, self._takeover_after)
        self._start(transfer)

    # -- the transfer ------------------------------------------------------------------

    def _start(self, transfer: Transfer) -> None:
        transfer.state = TransferState.ACTIVE
        source = self._next_source(transfer)
        if source is None:
            if self._retry_later(transfer):
                return
            _LIMITED.error("give up", "[%s] Could not get a working source for %s (tried %s; %d round(s) in %.0f s); "
                           "giving up, without acking the servers: %s", self.name, transfer.uids[0],
                           ", ".join(sorted(transfer.tried)) or "none", transfer.rounds + 1,
                           time.time() - transfer.since, transfer.last_error or "no source")
            self._give_up(transfer)
            return
        transfer.current = source
        if source.data["request_address"] not in transfer.tried:
            transfer.tried.append(source.data["request_address"])
        try:
            destination = delivery.compose_destination(self.config.destination, source.data)
        except (KeyError, ValueError, TypeError) as err:
            _LIMITED.warning(f"destination:{self.name}", "[%s] Cannot compose destination %r for %s: %s %s", self.name,
                             self.config.destination, transfer.uids[0], type(err).__name__, err)
            transfer.last_error = f"cannot compose destination {self.config.destination!r}: {type(err).__name__} {err}"
            self._give_up(transfer)
            return
        if self.config.create_target_directory:
            directory = delivery.local_directory(destination, self.config.ftp_root)
            if directory:
                try:
                    delivery.make_directory(directory)
                except OSError as err:
                    LOG.warning("[%s] Cannot create %s: %s", self.name, directory, err)
        self._publish(self._push_message(source, destination, with_credentials=False))
        LOG.debug("[%s] Requesting %s from %s", self.name, transfer.uids[0], source.data["request_address"])
        _record("requested", self.name, transfer.uids, peer=source.data["request_address"],
                destination=redact(destination, drop_user=True))
        assert self._requester is not None
        transfer.requested = time.monotonic()
        self.metrics.requested.inc(len(transfer.uids), chain=self.name)
        # the message is made when the request is sent: a queue of thousands holds no message copies
        self._requester.request(source.data["request_address"],
                                partial(self._push_message, source, destination, with_credentials=True,
                                        redeliver=transfer.redeliver),
                                timeout=self.config.transfer_req_timeout, attempts=self.config.request_attempts,
                                kind="push", callback=partial(self._on_push_reply, transfer, source, destination))

    def _push_message(self, source: Message, destination: str, *, with_credentials: bool,
                      redeliver: str = "") -> Message:
        """A push of ``source``'s files to ``destination``: published without the password, sent with it.
        ``redeliver`` says why the previous copy was bad (our servers then transfer it again)."""
        push = dict(source.data)
        if redeliver:
            push["redeliver"] = redeliver
        push["destination"] = delivery.request_destination(destination, self.config.login,
                                                           with_credentials=with_credentials)
        if self.config.backup_targets:
            push["backup_targets"] = list(self.config.backup_targets)
        return make_message(source.subject, "push", push)

    def _next_source(self, transfer: Transfer) -> Message | None:
        assert self._requester is not None
        untried = [s for s in transfer.sources if s.data["request_address"] not in transfer.tried]
        for source in untried:
            if not self._requester.is_down(source.data["request_address"]):
                return source
        return untried[0] if untried else None

    def _on_push_reply(self, transfer: Transfer, source: Message, destination: str, reply: Message | None,
                       error: str | None) -> None:
        if self.transfers.get(transfer.key) is not transfer:
            return
        address = source.data["request_address"]
        if reply is None or reply.type not in _SUCCESS:
            detail = self._scrub(str(error if reply is None else f"{reply.type} {reply.data!s:.1000}"))
            transfer.last_error = f"{address}: {detail}"
            # a WARNING: the next source or round follows; giving up at last is the ERROR
            _LIMITED.warning("failed", "[%s] Failed to get %s from %s: %s", self.name, transfer.uids[0],
                             address, detail)
            _record("request failed", self.name, transfer.uids, peer=address, detail=detail,
                    seconds=time.monotonic() - transfer.requested if transfer.requested else None)
            self._start(transfer)
            return
        # the server may have failed over to one of our backup_targets: the result names that host
        destination = delivery.served_destination(destination, reply.data, self.config.backup_targets)
        result = delivery.local_message_data(source.data, destination, self.config.login, self.config.metadata)
        checks = verification.local_checks(result, destination, address, self.config.ftp_root,
                                           verification.copy_verified(reply.data, source.data))
        if sum(check.expected.size for check in checks) > verification.INLINE_BYTES:
            # read on a worker: a big file must not hold the loop
            transfer.state = TransferState.FINISHING
            self._workers().submit(self._verify, transfer, source, destination, result, checks)
            return
        if checks:
            self._verified(transfer, source, destination, result, verification.verify(checks))
            return
        self._delivered(transfer, source, destination, result)

    def _workers(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"finish-{self.name}")
        return self._executor

    def _verify(self, transfer: Transfer, source: Message, destination: str, result: dict[str, Any],
                checks: list[verification.LocalCheck]) -> None:
        """Runs in a worker thread: read the delivered files back against the announcement."""
        problem = verification.verify(checks)
        self._loop.call_soon_threadsafe(self._verified, transfer, source, destination, result, problem)

    def _verified(self, transfer: Transfer, source: Message, destination: str, result: dict[str, Any],
                  problem: str | None) -> None:
        if self.transfers.get(transfer.key) is not transfer:
            return
        if problem is None:
            transfer.redeliver = ""
            self._delivered(transfer, source, destination, result)
            return
        address = source.data["request_address"]
        transfer.last_error = transfer.redeliver = f"{address}: {problem}"
        _LIMITED.error("verify", "[%s] Discarded the copy of %s delivered by %s: %s", self.name, transfer.uids[0],
                       address, problem)
        self._start(transfer)

    def _delivered(self, transfer: Transfer, source: Message, destination: str, result: dict[str, Any]) -> None:
        address = source.data["request_address"]
        for uid in transfer.uids:
            self.cache.add(uid)
        # Journal first: a kill between the two then loses a log line, never repeats a fetch.
        self.state.delivered(transfer.key, transfer.uids,
                             make_message(source.subject, message_type(result, source.type), result))
        self._log_delivery(transfer, source, destination, result)
        self._publish(make_message(source.subject, "ack", dict(source.data)))
        self._wake_waiting(address)
        if self.config.compression:
            transfer.state = TransferState.FINISHING
            self._workers().submit(self._unpack, transfer, source, result)
        else:
            self._deliver(transfer, source, result)

    def _unpack(self, transfer: Transfer, source: Message, result: dict[str, Any]) -> None:
        """Runs in a worker thread: unpacking can take long and must not hold the loop."""
        config = self.config
        try:
            result = unpack_message(result, config.compression or "", delete=config.delete,
                                    xrit_program=config.xritdecompressor, block_size=config.block_size)
        except UnpackError as err:
            LOG.error("[%s] %s; publishing the packed file", self.name, err)
        except Exception:  # a bug in an unpacker: publish what was delivered rather than nothing
            LOG.exception("[%s] Unpacking %s failed; publishing the packed file", self.name, transfer.uids[0])
        self._loop.call_soon_threadsafe(self._deliver, transfer, source, result)

    def _log_delivery(self, transfer: Transfer, source: Message, destination: str, result: dict[str, Any]) -> None:
        """One :func:`log_transfer` line per delivered file, and the delivery metrics."""
        seconds = time.monotonic() - (transfer.requested or transfer.started)
        address = source.data["request_address"]
        location = parse_uri(destination)
        local = location.scheme == "file" and is_local_host(location.host)
        announced = list(dicts_with(source.data, "uri"))
        delivered = list(dicts_with(result, "uri"))
        total = 0
        for item, copy in zip(announced, delivered, strict=False):
            where = str(copy["uri"])
            size = file_size(where) if local and "://" not in where else None
            total += size or 0
            log_transfer(LOG, uid=str(item.get("uid", "")), source=delivery.source_of(address, item["uri"]),
                         destination=redact(where), nbytes=size, seconds=seconds)
            history.record("delivered", chain=self.name, uid=str(item.get("uid", "")), peer=address,
                           destination=redact(where, drop_user=True), seconds=seconds, size=size)
        self.metrics.delivered.inc(len(delivered), chain=self.name)
        self.metrics.bytes.inc(total, chain=self.name)
        self.metrics.duration.observe(seconds, chain=self.name)

    def _deliver(self, transfer: Transfer, source: Message, result: dict[str, Any]) -> None:
        self.delivered += 1
        atype = message_type(result, source.type)
        self._publish(make_message(source.subject, atype, result))
        self.observers.delivered(source.subject, atype, result)
        self.metrics.announced.inc(_file_count(result), chain=self.name)
        self.state.published(transfer.key)
        _record("published", self.name, transfer.uids, detail=source.subject)
        self._settle(transfer, ack=[s for s in transfer.sources if s is not source], forget=False)

    def _retry_later(self, transfer: Transfer) -> bool:
        """Schedule another round over every source unless the give-up time has passed."""
        remaining = self.config.give_up_after - (time.time() - transfer.since)
        if remaining <= 0 or not transfer.sources:
            return False
        delay = min(self.config.retry_delay * 2 ** min(transfer.rounds, 30), self.config.max_retry_delay, remaining)
        transfer.rounds += 1
        transfer.tried.clear()
        transfer.current = None
        transfer.state = TransferState.WAITING
        self._waiting[transfer.key] = transfer
        transfer.timer = self._loop.call_later(delay, self._retry, transfer)
        _record("retry", self.name, transfer.uids, detail=f"round {transfer.rounds} in {delay:.1f} s")
        _LIMITED.warning("retry", "[%s] No source could deliver %s (round %d: %s); retrying in %.1f s, giving up "
                         "in %.0f s", self.name, transfer.uids[0], transfer.rounds, transfer.last_error or "-",
                         delay, remaining)
        return True

    def _retry(self, transfer: Transfer) -> None:
        transfer.timer = None
        if self.transfers.get(transfer.key) is not transfer or transfer.state is not TransferState.WAITING:
            return
        if all(uid in self.cache for uid in transfer.uids):
            self._settle(transfer, ack=transfer.sources)
            return
        self._start(transfer)

    def _wake_waiting(self, address: str) -> None:
        """``address`` delivered a file: retry now what waits for a round that includes it."""
        for key, transfer in list(self._waiting.items()):
            if self.transfers.get(key) is not transfer or transfer.state is not TransferState.WAITING:
                del self._waiting[key]  # settled or started again since
            elif any(s.data.get("request_address") == address for s in transfer.sources):
                del self._waiting[key]
                transfer.cancel_timer()
                self._start(transfer)

    def _give_up(self, transfer: Transfer) -> None:
        """Settle a file no source could deliver: count, publish the failure; no server is acked
        (one with ``delete = true`` would remove the file nobody received)."""
        self.failed += 1
        self.metrics.failed.inc(len(transfer.uids), chain=self.name)
        for uid in transfer.uids:
            self._given_up.add(uid)
        self._publish(failure_message(self.name, transfer, self.config.destination))
        _record("failed", self.name, transfer.uids, detail=f"given up: {transfer.last_error or 'no source'}")
        self._settle(transfer, ack=())

    def _settle(self, transfer: Transfer, ack: Iterable[Message], *, forget: bool = True) -> None:
        transfer.cancel_timer()
        if self.transfers.get(transfer.key) is transfer:
            del self.transfers[transfer.key]
        if self._waiting.get(transfer.key) is transfer:
            del self._waiting[transfer.key]
        if forget:
            self.state.forget(transfer.key)
        for message in ack:
            self._ack(message)

    def _ack(self, announcement: Message) -> None:
        address = announcement.data["request_address"]
        assert self._requester is not None

        def done(reply: Message | None, error: str | None) -> None:
            if reply is None or reply.type != "ack":
                _LIMITED.warning("ack", "[%s] ack to %s not confirmed: %s", self.name, address,
                                 error or f"{reply.type if reply else None}")

        self._requester.request(address, make_message(announcement.subject, "ack", dict(announcement.data)),
                                timeout=self.config.req_timeout, attempts=self.config.request_attempts,
                                callback=done, kind="ack")

    # -- reconciliation -------------------------------------------------------------------

    def _reconcile_regularly(self) -> None:
        self._reconcile()
        self._loop.call_later(self.config.reconcile_interval, self._reconcile_regularly)

    def _remember_server(self, address: str, subject: str) -> None:
        """``address`` offered us files: journal it (once) so that a restarted chain asks it what it missed."""
        new = address not in self._servers
        self._servers[address] = subject
        now = time.monotonic()
        if new or now - self._seen_written.get(address, 0.0) > SEEN_EVERY:
            self._seen_written[address] = now
            self.state.server(address, subject, self._after.get(address))

    def _reconcile(self, *, force: bool = False) -> None:
        """Ask every known server for the announcements it made since the newest we saw listed, to
        request those the bus lost (``force``: even with ``reconcile_interval = 0``: the catch-up at start)."""
        if (self.config.reconcile_interval <= 0 and not force) or self._requester is None:
            return
        for address in list(self._servers):
            if address not in self._without_listing and address not in self._asking:
                self._ask(address, self._after.get(address))

    def _ask(self, address: str, after: float | None) -> None:
        """One page of ``address``'s listing, after ``after`` (None: from the start of this chain's business)."""
        assert self._requester is not None
        self._asking.add(address)
        since = after
        if since is None:
            since = self._horizon - CLOCK_MARGIN
            if address not in self._known_before:  # new to us: nothing from before this run is missed
                since = max(since, self._window_start())
        request = make_message(self.config.topic or self._servers[address], "info",
                          {"max_count": RECONCILE_COUNT, "announcements": True, "after": since})
        self._requester.request(address, request, timeout=max(self.config.req_timeout, 5.0), attempts=1,
                                kind="info", callback=lambda reply, error: self._on_info(address, since, after, reply))

    def _window_start(self) -> float:
        """Announcements older than this (wall clock) are not fetched by reconciliation: missed while we were down
        for longer than ``catch_up_window`` (0: catching up is off, only what the horizon allows)."""
        window = self.config.catch_up_window
        return self._started_at - window if window > 0 else self._horizon - CLOCK_MARGIN

    def _on_info(self, address: str, since: float, cursor: float | None, reply: Message | None) -> None:
        self._asking.discard(address)
        if reply is None or reply.type != "info" or not isinstance(reply.data, dict):
            return  # down or confused: the next round asks again
        entries = reply.data.get("announcements")
        if not isinstance(entries, list):
            self._without_listing.add(address)
            LOG.warning("[%s] %s does not list its announcements (an upstream server?): files it announced while we "
                        "were not listening are lost; relying on the bus alone for it", self.name, address)
            return
        self._check_gap(address, cursor, reply.data.get("complete_after"))
        wanted = [topic_prefix(t) for p in self.config.providers for t in self.config.topics_for(p)
                  if not t.startswith("/heartbeat/")]
        horizon, window_start = self._horizon - CLOCK_MARGIN, self._window_start()
        missed, newest = 0, since
        listed = [e for e in entries if isinstance(e, dict) and _is_time(e.get("time"))]
        for entry in sorted(listed, key=lambda e: e["time"]):  # oldest first, as they were announced
            newest = max(newest, float(entry["time"]))
            message = _listed_announcement(entry, address, horizon)
            if message is None or not any(topic_prefix(message.subject).startswith(w) for w in wanted):
                continue
            uids = uids_of(message.data)
            if (not uids or all(u in self.cache for u in uids) or all(u in self._given_up for u in uids)
                    or transfer_key(uids) in self.transfers):
                continue
            if entry["time"] < window_start:
                self._lost_by[address] = self._lost_by.get(address, 0) + 1
                continue
            missed += 1
            self._on_announcement(message)
        if missed:
            self.reconciled += missed
            LOG.warning("[%s] %d file(s) announced by %s never reached us on the bus; requesting them", self.name,
                        missed, address)
        now = time.monotonic()
        if newest > since or now - self._seen_written.get(address, 0.0) > SEEN_EVERY:
            self._seen_written[address] = now
            if newest > since:
                self._after[address] = newest
            self.state.server(address, self._servers.get(address, self.config.topic or "/"), self._after.get(address))
        if reply.data.get("more") is True and newest > since:
            self._ask(address, newest)
        elif self._lost_by.get(address):
            lost = self._lost_by.pop(address)
            self.lost += lost
            LOG.warning("[%s] %d file(s) announced by %s more than catch_up_window (%.0f s) before this start never "
                        "reached us (missed while we were down); not fetching them", self.name, lost, address,
                        self.config.catch_up_window)

    def _check_gap(self, address: str, cursor: float | None, complete_after: object) -> None:
        """Say once when ``address``'s listing no longer reaches back to the newest announcement we saw."""
        if (cursor is None or not _is_time(complete_after) or complete_after <= cursor  # type: ignore[operator]
                or address in self._gap_logged):
            return
        self._gap_logged.add(address)
        LOG.warning("[%s] The listing of %s only goes back to %s (restarted without --state-directory, or more "
                    "announcements than it keeps): what it announced between %s and then, if anything, is lost",
                    self.name, address, dt.datetime.fromtimestamp(float(complete_after), dt.UTC).isoformat(),  # type: ignore[arg-type]
                    dt.datetime.fromtimestamp(cursor, dt.UTC).isoformat())

    def _bad_message(self, message: str, *args: Any) -> None:
        self.metrics.bad_input.inc(chain=self.name)
        _LIMITED.warning(f"bad message:{self.name}", message, *args)

    def _scrub(self, text: str) -> str:
        """``text`` without the login's password or any ``user:password@`` of a URL in it."""
        return redact(text, secrets=[delivery.split_login(self.config.login)[1] or ""])

    def _publish(self, message: Message) -> None:
        try:
            self.publisher.send(message)
        except Exception as err:  # a publishing problem must not lose the transfer bookkeeping
            LOG.error("[%s] Cannot publish %s: %s", self.name, message.type, err)


def _record(event: str, chain: str, uids: Iterable[str], **fields: Any) -> None:
    for uid in uids:
        history.record(event, chain=chain, uid=uid, **fields)


def _replace_changed(sources: list[Message], message: Message) -> bool:
    """Put ``message`` in place of the source from the same server when it announces the files
    with other checksums (a file changed after its announcement is a new file); whether it did."""
    address = message.data.get("request_address")
    for index, source in enumerate(sources):
        if source.data.get("request_address") == address:
            if list(dicts_with(source.data, "integrity")) != list(dicts_with(message.data, "integrity")):
                sources[index] = message
                return True
            return False
    return False


def _file_count(data: Any) -> int:
    return max(1, sum(1 for _ in dicts_with(data, "uri")))


def failure_message(chain: str, transfer: Transfer, destination: str) -> Message:
    """The ``err`` message published when a file is given up: what, from where, why, since when.

    Subject ``/trollmoves/client/failed/<chain>`` (characters other than letters, digits,
    ``_.-`` replaced by ``_``), outside the chain's topic so that other clients never take it
    for an announcement. Data: ``chain``, ``uid``, ``uids``, ``sources`` (request addresses),
    ``destination`` (without credentials), ``error`` (the last one), ``first_announced`` (ISO
    time), ``rounds`` and ``announcement`` (the first announcement's data).
    """
    subject = f"{FAILURE_SUBJECT}/{re.sub(r'[^A-Za-z0-9_.-]', '_', chain) or '_'}"
    data = {
        "chain": chain,
        "uid": transfer.uids[0] if transfer.uids else "",
        "uids": list(transfer.uids),
        "sources": [str(s.data.get("request_address")) for s in transfer.sources],
        "destination": redact(destination),
        "error": transfer.last_error or "no source could deliver it",
        "first_announced": dt.datetime.fromtimestamp(transfer.since, dt.UTC).isoformat(),
        "rounds": transfer.rounds + 1,
        "announcement": dict(transfer.sources[0].data) if transfer.sources else {},
    }
    return make_message(subject, FAILURE_TYPE, data)


def _is_time(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _listed_announcement(entry: object, address: str, horizon: float) -> Message | None:
    """One entry of an ``info`` reply's ``announcements`` as an announcement, or None when it is
    malformed, older than ``horizon`` or not from ``address``."""
    if not isinstance(entry, dict):
        return None
    data, atype, subject, when = entry.get("data"), entry.get("type"), entry.get("subject"), entry.get("time")
    if (not isinstance(data, dict) or atype not in _SUCCESS or not isinstance(subject, str)
            or not subject.startswith("/") or any(c.isspace() for c in subject)
            or not isinstance(when, int | float) or isinstance(when, bool) or when < horizon):
        return None
    if data.setdefault("request_address", address) != address:
        return None
    try:
        return make_message(subject, atype, data)
    except Exception:  # posttroll refuses it: a malformed entry, skipped like a malformed message
        return None
