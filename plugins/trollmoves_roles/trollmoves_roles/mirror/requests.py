"""A mirror section's request inbox (a zmq ROUTER on the default transport), answering external
clients as a server does.

``ping`` → ``pong``, ``info`` → the re-announced files, ``ack`` → ``ack``, anything else →
``unknown``, and ``push``: the file is fetched from an internal server into staging (see
:mod:`.staging`), delivered to the requested destination with the mover for its scheme (on
the shared transfer pool), and answered with ``file``/``dataset``/``collection`` or ``err``,
with the same data and rules as :mod:`trollmoves_roles.server.requests`. Only files this
mirror re-announced are served, and only under the names it announced. Every request gets a
reply; a malformed one gets ``err`` with the reason.

Each file delivered to an external client is logged with
:func:`~trollmoves_core.logs.log_transfer` (source: the internal server's address and path);
the pool counts deliveries in the metrics, :class:`RequestSocket` counts requested files and
notes each client as a peer.

Runs in the section's event-loop thread; transfer results come back through the loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from posttroll.message import Message

from trollmoves_core.logs import file_size, log_transfer
from trollmoves_core.uri import redact
from trollmoves_roles.bus import security
from trollmoves_roles.bus.loop import EventLoop
from trollmoves_roles.bus.transport import IncomingRequest, MessageTransport
from trollmoves_roles.mirror.config import MirrorConfig
from trollmoves_roles.mirror.registry import ReannouncedFiles
from trollmoves_roles.mirror.staging import Fetch, Stager, announced_digests
from trollmoves_roles.observe.metrics import RoleMetrics
from trollmoves_roles.protocol import delivery, requests
from trollmoves_roles.protocol.destinations import DestinationRules
from trollmoves_roles.protocol.messages import MESSAGE_VERSION, transfer_key, uids_of
from trollmoves_roles.protocol.requests import ERROR_SUBJECT, BadRequest, one_line
from trollmoves_roles.runtime.process import own_ip
from trollmoves_roles.transfers.service import Delivery, FileJob, TransferService

LOG = logging.getLogger(__name__)

MAX_BATCH = 256
"""Requests read before the loop serves its other sockets."""


class RequestSocket:
    """Serve one section's external requests on ``tcp://<bind>:<request_port>``.

    Binding happens here, so a port in use fails at start with a ConfigError (after retrying
    for ``bind_retry`` seconds: a reload rebinds a port just released).
    ``on_reply`` is called after every reply (the section uses it to finish draining).
    """

    def __init__(self, config: MirrorConfig, loop: EventLoop, *, bind: str, registry: ReannouncedFiles, stager: Stager,
                 transfers: TransferService, transport: MessageTransport, on_reply: Callable[[], None] = lambda: None,
                 bind_retry: float = 0.0, metrics: RoleMetrics | None = None) -> None:
        self.config = config
        self._metrics = metrics if metrics is not None else RoleMetrics("mirror")
        self._loop = loop
        self._registry = registry
        self._stager = stager
        self._transfers = transfers
        self._allowed = None if config.allowed_destinations is None else \
            DestinationRules.parse(config.allowed_destinations)
        self._on_reply = on_reply
        self._started = time.monotonic()
        self.pending = 0
        """Push requests not answered yet."""
        address = f"tcp://{config.request_bind or bind}:{config.request_port}"
        if transport.BROKERED:  # requests come through the broker, addressed as announced
            address = f"{config.request_address or own_ip()}:{config.request_port}"
        self._inbox = transport.request_inbox(address, security=security.policy_for(config, self._metrics),
                                              bind_retry=bind_retry, section=config.name)
        self.address = self._inbox.address
        self._reading = False

    @property
    def name(self) -> str:
        return self.config.name

    def start(self) -> None:
        """Start reading requests (loop thread, or before the loop runs)."""
        self._loop.register(self._inbox.pollable, self._read)
        self._reading = True
        LOG.info("[%s] serving requests on %s", self.name, self.address)

    def stop_reading(self) -> None:
        """Take no more requests; replies to pending pushes still go out."""
        if self._reading:
            self._loop.unregister(self._inbox.pollable)
            self._reading = False

    def close(self) -> None:
        self.stop_reading()
        self._inbox.close()

    # -- reading and replying ----------------------------------------------------------

    def _read(self) -> None:
        for _ in range(MAX_BATCH):
            incoming = self._inbox.receive()
            if incoming is None:
                return
            self._metrics.peer_seen(incoming.peer)
            self._handle(incoming)

    def _send(self, envelope: object, reply: Message) -> None:
        self._inbox.reply(envelope, reply)
        self._on_reply()

    def _reject(self, envelope: object, subject: str, reason: str) -> None:
        self._metrics.bad_input.inc(chain=self.name)
        LOG.warning("[%s] request rejected: %s", self.name, reason)
        self._send(envelope, Message(subject or ERROR_SUBJECT, "err", reason, version=MESSAGE_VERSION))

    def _handle(self, incoming: IncomingRequest) -> None:
        envelope, request = incoming.token, incoming.request
        if isinstance(request, str):
            self._reject(envelope, ERROR_SUBJECT, request)
            return
        try:
            if request.type == "push":
                self._push(envelope, request)
                return
            reply = requests.answer(request, self.config.station, info=self._info, ack=requests.ack_reply)
        except BadRequest as err:
            self._reject(envelope, request.subject, str(err))
            return
        except Exception as err:
            LOG.exception("[%s] handling %s failed", self.name, request.type)
            self._reject(envelope, request.subject, f"mirror error: {one_line(err)}")
            return
        self._send(envelope, reply)

    def _info(self, request: Message) -> Message:
        return requests.reply(request, "info", requests.info_data(request, self._registry.newest, self._started))

    # -- push --------------------------------------------------------------------------

    def _push(self, envelope: object, request: Message) -> None:
        destination, items = requests.push_request(request)
        backups = requests.backup_targets(request)
        for item in items:
            if "uid" not in item:
                raise BadRequest(f"push: {item.get('uri')!r} has no uid")
        uids = uids_of(request.data)
        self._metrics.requested.inc(len(items), chain=self.name)
        entry = self._registry.get(transfer_key(uids))
        if entry is None or not entry.announced:
            self._metrics.refused.inc(chain=self.name, reason="access")
            LOG.warning("[%s] push refused for %s: %s was not announced by this mirror", self.name, request.sender,
                        uids[0])
            self._send(envelope, Message(request.subject, "err", f"{uids[0]} was not announced by this mirror",
                                         version=MESSAGE_VERSION))
            return
        LOG.info("[%s] push of %s to %s requested by %s", self.name, ", ".join(uids[:3]), redact(destination),
                 request.sender)
        push = PendingPush(envelope, request, destination, items, backups)
        self.pending += 1
        self._stager.acquire(entry, lambda fetch, error: self._fetched(push, fetch, error))

    def _fetched(self, push: PendingPush, fetch: Fetch | None, error: str | None) -> None:
        if fetch is None:
            self._answer(push.envelope, push.error(error or "fetch failed"))
            return
        expected = announced_digests(fetch.source.data) if fetch.source is not None else {}
        jobs = [FileJob(fetch.files[str(item["uid"])], item.get("path"), expected.get(str(item["uid"])))
                for item in push.items]
        if self._allowed is not None and (refusal := self._allowed.refusal(
                push.destination, [(job.path, job.rel_path) for job in jobs], push.backups)):
            self._stager.release(fetch)
            self._metrics.refused.inc(chain=self.name, reason="destination")
            LOG.warning("[%s] push refused for %s: %s", self.name, push.request.sender, refusal[:300])
            self._answer(push.envelope, push.error(f"push refused: {refusal}"[:1000]))
            return
        push.sizes = [file_size(job.path) for job in jobs]
        address = str(fetch.source.data.get("request_address")) if fetch.source is not None else "?"
        if fetch.entry.unpacked:  # unpacked here: the internal server never had these files
            push.sources = dict(fetch.files)
        else:
            push.sources = {uid: delivery.source_of(address, path) for uid, path in fetch.entry.source_paths().items()}
        push.started = time.monotonic()
        try:
            future = self._transfers.push(jobs, push.destination, self.config.connection_params,
                                          chain=self.name, backup_targets=push.backups, bwlimit=self.config.bwlimit,
                                          bwlimit_per_host=self.config.bwlimit_per_host)
        except Exception as err:  # the pool is shutting down
            self._stager.release(fetch)
            self._answer(push.envelope, push.error(f"mirror error: {one_line(err)}"))
            return
        future.add_done_callback(lambda f: self._loop.call_soon_threadsafe(self._pushed, push, fetch, f))

    def _pushed(self, push: PendingPush, fetch: Fetch, future: Future[Delivery]) -> None:
        self._stager.release(fetch)
        error = future.exception()
        if error is not None:
            LOG.error("[%s] push failed: %s", self.name, error)
            self._answer(push.envelope, push.error(one_line(error)))
            return
        seconds = time.monotonic() - push.started
        for item, size, uri in zip(push.items, push.sizes, future.result().uris, strict=False):
            uid = str(item["uid"])
            log_transfer(LOG, uid=uid, source=push.sources.get(uid, "?"), destination=redact(uri, drop_user=True),
                         nbytes=size, seconds=seconds)
        self._answer(push.envelope, push.success(future.result().host))

    def _answer(self, envelope: object, reply: Message) -> None:
        self.pending -= 1
        self._send(envelope, reply)


@dataclass
class PendingPush:
    """One external push waiting for its fetch and delivery."""

    envelope: object
    request: Message
    destination: str
    items: list[dict[str, Any]]
    backups: tuple[str, ...] = ()
    """Hosts to fail the delivery over to (the request's ``backup_targets``)."""
    started: float = 0.0
    """When the delivery was handed to the pool (monotonic)."""
    sizes: list[int | None] = field(default_factory=list)
    """Bytes of each staged file, read before the delivery (staging may be gone after it)."""
    sources: dict[str, str] = field(default_factory=dict)
    """uid → where it came from (internal server and path), for the log."""

    def error(self, reason: str) -> Message:
        return Message(self.request.subject, "err", reason, version=MESSAGE_VERSION)

    def success(self, host: str | None = None) -> Message:
        """The server's reply: the request data, destination (with ``path``, on the backup ``host``
        that got the files if one did) without credentials."""
        return requests.push_reply(self.request, host)
