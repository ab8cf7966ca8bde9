"""A chain's request socket: a zmq ROUTER answering ``ping``, ``info``, ``ack`` and ``push``.

One thread owns the socket. Pushes run on the shared transfer pool; their replies come back
through a queue and a pipe that wakes the socket's poller, so nothing polls with a sleep.
Every request gets a reply: a malformed one gets ``err`` with the reason. Bad requests are
logged rate-limited (a flood of garbage must not flood the log) and counted in the metrics.

Who may connect at all is decided during the zmq handshake by the chain's
:class:`~trollmoves_roles.security.Policy` (``allowed_clients``, CURVE keys): refused peers'
requests never reach this module.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import zmq
from posttroll.message import Message

from trollmoves_core.exceptions import ConfigError
from trollmoves_core.uri import redact
from trollmoves_roles import security
from trollmoves_roles.bus import MESSAGE_VERSION
from trollmoves_roles.metrics import RoleMetrics
from trollmoves_roles.ratelimit import RateLimitedLog
from trollmoves_roles.reqrep import BadRequest, one_line, peer_address, request_dict, split_envelope
from trollmoves_roles.server.access import AccessDenied, check_access
from trollmoves_roles.server.announced import AnnouncedFiles
from trollmoves_roles.server.config import ChainConfig
from trollmoves_roles.server.deleter import Deleter
from trollmoves_roles.server.messages import file_dicts
from trollmoves_roles.server.transfer import FileJob, TransferService, join_rel_path, strip_credentials

LOG = logging.getLogger(__name__)
_LIMITED = RateLimitedLog(LOG)

REQUEST_MAX_BYTES = 4 * 1024 * 1024
"""Larger requests are dropped by zmq, which disconnects the sender (a push is a few kB)."""
INFO_MAX_COUNT = 2256
"""Most file names an ``info`` reply lists (as upstream)."""
ERROR_SUBJECT = "/error"


class RequestServer:
    """Serve one chain's requests on ``tcp://<bind>:<request_port>``.

    :param directories: returns the directories whose announced files may be served (None:
        no directory restriction beyond the file's own, for ``listen`` chains).
    :param bind_retry: seconds to keep retrying a port still held by a just-closed socket.
    """

    def __init__(self, chain: ChainConfig, *, bind: str, announced: AnnouncedFiles,
                 directories: Callable[[], list[str] | None], transfers: TransferService, deleter: Deleter,
                 context: zmq.Context | None = None, bind_retry: float = 0.0,
                 metrics: RoleMetrics | None = None) -> None:
        self.chain = chain
        self._announced = announced
        self._directories = directories
        self._transfers = transfers
        self._deleter = deleter
        self._metrics = metrics or RoleMetrics("server")
        self._started = time.monotonic()
        context = context or security.request_context()
        self._socket = context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 1000)
        self._socket.setsockopt(zmq.MAXMSGSIZE, REQUEST_MAX_BYTES)
        try:
            self._domain = security.secure(self._socket, policy_for(chain, self._metrics))
        except security.SecurityError as err:
            self._socket.close(0)
            raise ConfigError(str(err), section=chain.name, key="server_secret_key_file") from None
        address = f"tcp://{chain.request_bind or bind}:{chain.request_port}"
        deadline = time.monotonic() + bind_retry
        while True:
            try:
                self._socket.bind(address)
                break
            except zmq.ZMQError as err:
                # After a reload the previous socket on this port is released asynchronously.
                if err.errno == zmq.EADDRINUSE and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                self._socket.close(0)
                security.release(self._domain)
                raise ConfigError(f"cannot listen on {address}: {zmq.strerror(err.errno)}", section=chain.name,
                                  key="request_port") from None
        self.address = address
        self._replies: collections.deque[list[bytes]] = collections.deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._pending = 0
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
        self._wake()
        self._thread.join(drain_timeout + 5)
        if self._thread.is_alive():
            LOG.error("[%s] request thread did not stop", self.chain.name)

    # -- the socket thread ---------------------------------------------------------------

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        reading = True
        try:
            while True:
                if self._stopping.is_set():
                    if reading:
                        poller.unregister(self._socket)
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
                if self._wake_r in events:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 65536)
                self._send_replies()
                if reading and self._socket in events:
                    self._read_requests()
        except Exception:
            LOG.exception("[%s] request loop failed", self.chain.name)
        finally:
            self._send_replies()
            self._socket.close(linger=1000)
            security.release(self._domain)
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _read_requests(self) -> None:
        while True:
            try:
                parts = self._socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            peer = peer_address(parts[-1])
            self._metrics.peer_seen(peer)
            try:
                self._handle([part.bytes for part in parts], peer)
            except Exception:  # a bug on one request must not stop the chain serving the others
                self._metrics.bad_input.inc(chain=self.chain.name)
                _LIMITED.error("error", "[%s] request from %s failed", self.chain.name, peer, exc_info=True)

    def _send_replies(self) -> None:
        while self._replies:
            frames = self._replies.popleft()
            try:
                self._socket.send_multipart(frames, zmq.NOBLOCK)
            except zmq.ZMQError as err:
                LOG.warning("[%s] could not send a reply: %s", self.chain.name, err)

    def _wake(self) -> None:
        # OSError: the pipe is full (a wakeup is pending anyway) or already closed
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")

    def _queue_reply(self, envelope: list[bytes], reply: Message) -> None:
        self._replies.append([*envelope, reply.encode().encode()])
        self._wake()

    # -- request handling ------------------------------------------------------------

    def _handle(self, frames: list[bytes], peer: str = "?") -> None:
        envelope, body = split_envelope(frames)
        if len(body) != 1:
            self._reject(envelope, ERROR_SUBJECT, f"expected one message frame, got {len(body)}")
            return
        try:
            request = Message.decode(body[0])
        except Exception as err:  # anything undecodable gets an answer, never silence
            self._reject(envelope, ERROR_SUBJECT, f"invalid request: {one_line(err)}", peer)
            return
        try:
            if request.type == "push":
                self._push(envelope, request, peer)
                return
            if request.type == "ping":
                reply = self._message(request, "pong", {"station": self.chain.station})
            elif request.type == "ack":
                reply = self._ack(request)
            elif request.type == "info":
                reply = self._info(request)
            else:
                reply = self._message(request, "unknown")
        except BadRequest as err:
            self._reject(envelope, request.subject, str(err), peer)
            return
        except Exception as err:
            self._metrics.bad_input.inc(chain=self.chain.name)
            _LIMITED.error("error", "[%s] handling %s from %s failed", self.chain.name, request.type, peer,
                           exc_info=True)
            self._queue_reply(envelope, Message(request.subject or ERROR_SUBJECT, "err",
                                                f"server error: {one_line(err)[:200]}", version=MESSAGE_VERSION))
            return
        self._queue_reply(envelope, reply)

    def _reject(self, envelope: list[bytes], subject: str, reason: str, peer: str = "?") -> None:
        self._metrics.bad_input.inc(chain=self.chain.name)
        _LIMITED.warning("rejected", "[%s] request from %s rejected: %s", self.chain.name, peer, reason[:300])
        self._queue_reply(envelope, Message(subject or ERROR_SUBJECT, "err", reason[:1000], version=MESSAGE_VERSION))

    def _message(self, request: Message, atype: str, data: Any = None) -> Message:
        if data is None:
            return Message(request.subject, atype, version=MESSAGE_VERSION)
        return Message(request.subject, atype, data, version=MESSAGE_VERSION)

    def _info(self, request: Message) -> Message:
        """Upstream's reply (``files``, ``max_count``, ``uptime``); with ``"announcements": true``
        in the request also ``announcements``: this chain's recent announcements (any subject),
        newest first, as ``{"subject", "type", "data", "time"}``, for clients to find what the
        bus did not bring them."""
        data = request.data if isinstance(request.data, dict) else {}
        max_count = data.get("max_count", INFO_MAX_COUNT)
        if not isinstance(max_count, int) or isinstance(max_count, bool) or max_count < 0:
            raise BadRequest(f"info: max_count must be a non-negative integer, got {max_count!r}")
        files = self._announced.newest(request.subject, min(max_count, INFO_MAX_COUNT))
        uptime = str(dt.timedelta(seconds=time.monotonic() - self._started))
        reply: dict[str, Any] = {"files": files, "max_count": max_count, "uptime": uptime}
        if data.get("announcements") is True:
            reply["announcements"] = self._announced.listed(self.chain.name, min(max_count, INFO_MAX_COUNT))
        return self._message(request, "info", reply)

    def _ack(self, request: Message) -> Message:
        data = request_dict(request)
        if self.chain.delete:
            for item in file_dicts(data):
                self._schedule_delete(item.get("uri"))
        reply = dict(data)
        if isinstance(reply.get("destination"), str):
            reply["destination"] = strip_credentials(reply["destination"])
        return self._message(request, "ack", reply)

    def _push(self, envelope: list[bytes], request: Message, peer: str = "?") -> None:
        data = request_dict(request)
        destination = data.get("destination")
        if not isinstance(destination, str) or not destination.strip():
            self._reject(envelope, request.subject, "push without a destination", peer)
            return
        problem = _destination_problem(destination)
        if problem:
            self._reject(envelope, request.subject, f"push: {problem}", peer)
            return
        items = list(file_dicts(data))
        if not items:
            self._reject(envelope, request.subject, "push without any uri", peer)
            return
        self._metrics.requested.inc(len(items), chain=self.chain.name)
        directories = self._directories()
        jobs = []
        for item in items:
            rel_path = item.get("path")
            if rel_path is not None and not isinstance(rel_path, str):
                self._reject(envelope, request.subject, f"push: path must be a string, got {rel_path!r}"[:300], peer)
                return
            try:
                path = check_access(item.get("uri"), self._announced, directories)
            except AccessDenied as err:
                self._metrics.refused.inc(chain=self.chain.name, reason="access")
                _LIMITED.warning("refused", "[%s] push refused for %s (%s): %s", self.chain.name, request.sender,
                                 peer, str(err)[:300])
                self._queue_reply(envelope, Message(request.subject, "err", str(err)[:1000],
                                                    version=MESSAGE_VERSION))
                return
            jobs.append(FileJob(path, rel_path))
        LOG.info("[%s] push of %s to %s requested by %s", self.chain.name, ", ".join(j.path for j in jobs[:3]),
                 redact(destination), request.sender)
        try:
            future = self._transfers.push(jobs, destination, self.chain.connection_params, self.chain.name)
        except RuntimeError as err:  # the pool is shutting down
            self._reject(envelope, request.subject, f"server stopping: {err}")
            return
        with self._lock:
            self._pending += 1
        future.add_done_callback(lambda f: self._push_done(envelope, request, data, jobs, f))

    def _push_done(self, envelope: list[bytes], request: Message, data: dict[str, Any], jobs: list[FileJob],
                   future: Future[list[str]]) -> None:
        try:
            error = future.exception()
            if error is not None:
                _LIMITED.error("push failed", "[%s] push failed: %s", self.chain.name, one_line(error)[:500])
                reply = Message(request.subject, "err", one_line(error), version=MESSAGE_VERSION)
            else:
                reply_data = dict(data)
                destination = join_rel_path(data["destination"], data.get("path") if isinstance(data.get("path"), str)
                                            else None)
                reply_data["destination"] = strip_credentials(destination)
                reply = self._message(request, _reply_type(data, request.type), reply_data)
                if self.chain.delete:
                    for job in jobs:
                        self._deleter.schedule(job.path, self.chain.remove_delay)
            self._queue_reply(envelope, reply)
        finally:
            with self._lock:
                self._pending -= 1
            self._wake()

    def _schedule_delete(self, uri: Any) -> None:
        try:
            path = check_access(uri, self._announced, self._directories())
        except AccessDenied as err:
            LOG.debug("[%s] ack for %s: not deleting: %s", self.chain.name, uri, err)
            return
        self._deleter.schedule(path, self.chain.remove_delay)


def policy_for(chain: ChainConfig, metrics: RoleMetrics | None = None) -> security.Policy:
    """The chain's request socket policy (inactive when it sets no security key)."""
    def refused(address: str, reason: str) -> None:
        if metrics is not None:
            metrics.refused.inc(chain=chain.name, reason="unknown key" if "key" in reason else "address")

    networks = None
    if chain.allowed_clients is not None:
        import ipaddress
        networks = tuple(ipaddress.ip_network(n) for n in chain.allowed_clients)
    keys = security.KeyDirectory(chain.clients_public_keys_directory) if chain.clients_public_keys_directory \
        else None
    return security.Policy(chain.name, networks=networks, server_secret_key_file=chain.server_secret_key_file,
                           clients_keys=keys, on_refused=refused)


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


def _reply_type(data: dict[str, Any], request_type: str) -> str:
    for key, atype in (("uri", "file"), ("dataset", "dataset"), ("collection", "collection")):
        if key in data:
            return atype
    return request_type
