"""A chain's request inbox (a zmq ROUTER on the default transport) answering ``ping``, ``info``, ``ack`` and ``push``.

One thread owns the socket. Pushes run on the shared transfer pool; their replies come back
through a queue and a pipe that wakes the socket's poller, so nothing polls with a sleep.
Every request gets a reply: a malformed one gets ``err`` with the reason. Bad requests are
logged rate-limited (a flood of garbage must not flood the log) and counted in the metrics.

Who may connect at all is decided during the zmq handshake by the chain's
:class:`~trollmoves_roles.bus.security.Policy` (``allowed_clients``, CURVE keys): refused peers'
requests never reach this module.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import zmq
from posttroll.message import Message

from trollmoves_core.checksum import COPY_VERIFIED_KEY, from_data
from trollmoves_core.uri import redact
from trollmoves_roles.bus import security
from trollmoves_roles.bus.transport import IncomingRequest, MessageTransport
from trollmoves_roles.observe.metrics import RoleMetrics
from trollmoves_roles.observe.ratelimit import RateLimitedLog
from trollmoves_roles.protocol import requests
from trollmoves_roles.protocol.codec import make_message
from trollmoves_roles.protocol.destinations import DestinationRules
from trollmoves_roles.protocol.messages import dicts_with
from trollmoves_roles.protocol.requests import ERROR_SUBJECT, BadRequest, one_line, request_dict
from trollmoves_roles.runtime.signals import Wakeup
from trollmoves_roles.server.access import AccessDenied, check_access
from trollmoves_roles.server.announced import AnnouncedFiles
from trollmoves_roles.server.config import ServerChainConfig
from trollmoves_roles.server.deleter import Deleter
from trollmoves_roles.state import history
from trollmoves_roles.transfers.service import Delivery, FileJob, TransferService

LOG = logging.getLogger(__name__)
_LIMITED = RateLimitedLog(LOG)



class RequestServer:
    """Serve one chain's requests on ``tcp://<bind>:<request_port>``.

    :param directories: returns the directories whose announced files may be served (None:
        no directory restriction beyond the file's own, for ``listen`` chains).
    :param bind_retry: seconds to keep retrying a port still held by a just-closed socket.
    :param request_address: the ``host:port`` announced to clients (a brokered transport's inbox address).
    """

    def __init__(self, chain: ServerChainConfig, *, bind: str, announced: AnnouncedFiles,
                 directories: Callable[[], list[str] | None], transfers: TransferService, deleter: Deleter,
                 transport: MessageTransport, bind_retry: float = 0.0, metrics: RoleMetrics | None = None,
                 request_address: str | None = None) -> None:
        self.chain = chain
        self._announced = announced
        self._directories = directories
        self._transfers = transfers
        self._deleter = deleter
        self._metrics = metrics or RoleMetrics("server")
        self._allowed = None if chain.allowed_destinations is None else \
            DestinationRules.parse(chain.allowed_destinations)
        self._started = time.monotonic()
        address = f"tcp://{chain.request_bind or bind}:{chain.request_port}"
        if transport.BROKERED and request_address:  # requests come through the broker, addressed as announced
            address = request_address
        self._inbox = transport.request_inbox(address,
                                              security=security.policy_for(chain, self._metrics), bind_retry=bind_retry,
                                              section=chain.name)
        self.address = self._inbox.address
        self._replies: collections.deque[tuple[object, Message]] = collections.deque()
        self._wakeup = Wakeup()
        self._pending = 0
        self.pushes_requested = 0
        """Files clients asked this chain to push (refused ones too): what paces the backlog."""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._drain_deadline = 0.0
        self._thread = threading.Thread(target=self._run, name=f"requests-{chain.name}", daemon=True)

    def start(self) -> RequestServer:
        self._thread.start()
        LOG.info("[%s] serving requests on %s", self.chain.name, self.address)
        return self

    def stop(self, drain_timeout: float = 30.0) -> None:
        """Stop reading requests; deliver replies of running pushes (up to ``drain_timeout`` s); close."""
        self._drain_deadline = time.monotonic() + drain_timeout
        self._stopping.set()
        self._wakeup.wake()
        self._thread.join(drain_timeout + 5)
        if self._thread.is_alive():
            LOG.error("[%s] request thread did not stop", self.chain.name)

    # -- the socket thread ---------------------------------------------------------------

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._inbox.pollable, zmq.POLLIN)
        poller.register(self._wakeup.fileno(), zmq.POLLIN)
        reading = True
        try:
            while True:
                if self._stopping.is_set():
                    if reading:
                        poller.unregister(self._inbox.pollable)
                        reading = False
                    with self._lock:
                        pending = self._pending
                    if pending == 0 and not self._replies:
                        break
                    if time.monotonic() >= self._drain_deadline:
                        LOG.warning("[%s] closing with %d push reply(ies) undelivered", self.chain.name, pending)
                        break
                    timeout = max(1, int((self._drain_deadline - time.monotonic()) * 1000))
                else:
                    timeout = None
                events = dict(poller.poll(timeout))
                if self._wakeup.fileno() in events:
                    self._wakeup.clear()
                self._send_replies()
                if reading and self._inbox.pollable in events:
                    self._read_requests()
        except Exception:
            LOG.exception("[%s] request loop failed", self.chain.name)
        finally:
            self._send_replies()
            self._inbox.close()
            self._wakeup.close()

    def _read_requests(self) -> None:
        while (incoming := self._inbox.receive()) is not None:
            self._metrics.peer_seen(incoming.peer)
            try:
                self._handle(incoming)
            except Exception:  # a bug on one request must not stop the chain serving the others
                self._metrics.bad_input.inc(chain=self.chain.name)
                _LIMITED.error("error", "[%s] request from %s failed", self.chain.name, incoming.peer, exc_info=True)

    def _send_replies(self) -> None:
        while self._replies:
            token, reply = self._replies.popleft()
            self._inbox.reply(token, reply)

    def _queue_reply(self, token: object, reply: Message) -> None:
        self._replies.append((token, reply))
        self._wakeup.wake()

    # -- request handling ------------------------------------------------------------

    def _handle(self, incoming: IncomingRequest) -> None:
        envelope, request, peer = incoming.token, incoming.request, incoming.peer
        if isinstance(request, str):
            self._reject(envelope, ERROR_SUBJECT, request, peer)
            return
        try:
            if request.type == "push":
                self._push(envelope, request, peer)
                return
            reply = requests.answer(request, self.chain.station, info=self._info, ack=self._ack)
        except BadRequest as err:
            self._reject(envelope, request.subject, str(err), peer)
            return
        except Exception as err:
            self._metrics.bad_input.inc(chain=self.chain.name)
            _LIMITED.error("error", "[%s] handling %s from %s failed", self.chain.name, request.type, peer,
                           exc_info=True)
            self._queue_reply(envelope, make_message(request.subject or ERROR_SUBJECT, "err",
                                                     f"server error: {one_line(err)[:200]}"))
            return
        self._queue_reply(envelope, reply)

    def _reject(self, envelope: object, subject: str, reason: str, peer: str = "?") -> None:
        self._metrics.bad_input.inc(chain=self.chain.name)
        _LIMITED.warning("rejected", "[%s] request from %s rejected: %s", self.chain.name, peer, reason[:300])
        self._queue_reply(envelope, make_message(subject or ERROR_SUBJECT, "err", reason[:1000]))

    def _info(self, request: Message) -> Message:
        """Upstream's reply (``files``, ``max_count``, ``uptime``); with ``"announcements": true``
        in the request also ``announcements``: this chain's recent announcements (any subject),
        newest first, as ``{"subject", "type", "data", "time"}``, for clients to find what the
        bus did not bring them, and ``complete_after``. With ``"after": t`` as well, those made
        after ``t``, oldest first, and ``more`` (a page is full: ask again after its last)."""
        reply = requests.info_data(request, self._announced.newest, self._started)
        if isinstance(request.data, dict) and request.data.get("announcements") is True:
            limit = min(reply["max_count"], requests.INFO_MAX_COUNT)
            after = request.data.get("after")
            if after is None:
                reply["announcements"] = self._announced.listed(self.chain.name, limit)
            elif isinstance(after, int | float) and not isinstance(after, bool):
                reply["announcements"], reply["more"] = self._announced.listed_after(self.chain.name, after, limit)
            else:
                raise BadRequest(f"info: after must be a number (Unix seconds), got {after!r}"[:300])
            reply["complete_after"] = self._announced.complete_after(self.chain.name)
        return requests.reply(request, "info", reply)

    def _ack(self, request: Message) -> Message:
        if self.chain.delete:
            for item in dicts_with(request_dict(request), "uri"):
                self._schedule_delete(item.get("uri"))
        return requests.ack_reply(request)

    def _push(self, envelope: object, request: Message, peer: str = "?") -> None:
        destination, items = requests.push_request(request)
        problem = _destination_problem(destination)
        if problem:
            raise BadRequest(f"push: {problem}")
        backups = requests.backup_targets(request)
        self.pushes_requested += len(items)
        self._metrics.requested.inc(len(items), chain=self.chain.name)
        directories = self._directories()
        jobs = []
        vouchable = True
        for item in items:
            try:
                path = check_access(item.get("uri"), self._announced, directories)
            except AccessDenied as err:
                self._metrics.refused.inc(chain=self.chain.name, reason="access")
                _LIMITED.warning("refused", "[%s] push refused for %s (%s): %s", self.chain.name, request.sender,
                                 peer, str(err)[:300])
                self._queue_reply(envelope, make_message(request.subject, "err", str(err)[:1000]))
                return
            record = self._announced.get(path)
            jobs.append(FileJob(path, item.get("path"), record.digest if record is not None else None))
            # a copy is vouched for only as the file the client asked for: not a rewrite announced since
            vouchable = vouchable and record is not None and from_data(item) == record.digest
        if self._allowed is not None and (refusal := self._allowed.refusal(
                destination, [(job.path, job.rel_path) for job in jobs], backups)):
            self._metrics.refused.inc(chain=self.chain.name, reason="destination")
            _LIMITED.warning("refused", "[%s] push refused for %s (%s): %s", self.chain.name, request.sender, peer,
                             refusal[:300])
            self._queue_reply(envelope, make_message(request.subject, "err", f"push refused: {refusal}"[:1000]))
            return
        LOG.info("[%s] push of %s to %s requested by %s", self.chain.name, ", ".join(j.path for j in jobs[:3]),
                 redact(destination), request.sender)
        for job in jobs:
            history.record("requested", chain=self.chain.name, path=job.path, peer=f"{request.sender} ({peer})",
                           destination=redact(destination, drop_user=True))
        redeliver = request.data.get("redeliver") if isinstance(request.data, dict) else None
        if redeliver:
            _LIMITED.warning("redeliver", "[%s] %s found its copy of %s bad (%.300s); pushing it again",
                             self.chain.name, request.sender, jobs[0].path, redeliver)
        try:
            future = self._transfers.push(jobs, destination, self.chain.connection_params, self.chain.name,
                                          backup_targets=backups, again=bool(redeliver),
                                          bwlimit=self.chain.bwlimit, bwlimit_per_host=self.chain.bwlimit_per_host)
        except RuntimeError as err:  # the pool is shutting down
            self._reject(envelope, request.subject, f"server stopping: {err}")
            return
        with self._lock:
            self._pending += 1
        future.add_done_callback(lambda f: self._push_done(envelope, request, jobs, vouchable, f))

    def _push_done(self, envelope: object, request: Message, jobs: list[FileJob], vouchable: bool,
                   future: Future[Delivery]) -> None:
        try:
            error = future.exception()
            if error is not None:
                _LIMITED.error("push failed", "[%s] push failed: %s", self.chain.name, one_line(error)[:500])
                reply = make_message(request.subject, "err", one_line(error))
            else:
                delivery = future.result()
                reply = requests.push_reply(request, delivery.host)
                # ours only (module checksum): never echoed from the request, said only when true
                reply.data.pop(COPY_VERIFIED_KEY, None)
                methods = {job.expected.method if job.expected else None for job in jobs}
                if vouchable and delivery.verified and len(methods) == 1 and None not in methods:
                    reply.data[COPY_VERIFIED_KEY] = methods.pop()
                if self.chain.delete:
                    for job in jobs:
                        self._deleter.schedule(job.path, self.chain.remove_delay)
            self._replies.append((envelope, reply))  # queued before the count drops: a drain waits for it
        finally:
            with self._lock:
                self._pending -= 1
            self._wakeup.wake()  # one wake-up for the reply and the count

    def _schedule_delete(self, uri: Any) -> None:
        try:
            path = check_access(uri, self._announced, self._directories())
        except AccessDenied as err:
            LOG.debug("[%s] ack for %s: not deleting: %s", self.chain.name, uri, err)
            return
        self._deleter.schedule(path, self.chain.remove_delay)


def _destination_problem(destination: str) -> str | None:
    """Why ``destination`` cannot be pushed to, or None. Relative local paths would land in the
    server's working directory, which no client can mean."""
    if "\x00" in destination:
        return "destination contains a NUL character"
    if "://" not in destination:
        return None if destination.startswith("/") else f"destination {redact(destination)[:200]!r} is neither " \
            "a URL nor an absolute path"
    scheme, _, rest = destination.partition("://")
    if not scheme or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return f"destination {redact(destination)[:200]!r} has no valid scheme"
    if scheme == "file" and not ("/" + rest.split("/", 1)[-1] if "/" in rest else "").startswith("/"):
        return f"destination {redact(destination)[:200]!r} has no absolute path"
    return None

