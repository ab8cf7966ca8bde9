"""A chain's request socket: a zmq ROUTER answering ``ping``, ``info``, ``ack`` and ``push``.

One thread owns the socket. Pushes run on the shared transfer pool; their replies come back
through a queue and a pipe that wakes the socket's poller, so nothing polls with a sleep.
Every request gets a reply: a malformed one gets ``err`` with the reason.
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
from trollmoves_roles.bus import MAX_MESSAGE_BYTES
from trollmoves_roles.server.access import AccessDenied, check_access
from trollmoves_roles.server.announced import AnnouncedFiles
from trollmoves_roles.server.config import ChainConfig
from trollmoves_roles.server.deleter import Deleter
from trollmoves_roles.server.messages import MESSAGE_VERSION, file_dicts
from trollmoves_roles.server.transfer import FileJob, TransferService, join_rel_path, strip_credentials

LOG = logging.getLogger(__name__)

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
                 context: zmq.Context | None = None, bind_retry: float = 0.0) -> None:
        self.chain = chain
        self._announced = announced
        self._directories = directories
        self._transfers = transfers
        self._deleter = deleter
        self._started = time.monotonic()
        context = context or zmq.Context.instance()
        self._socket = context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 1000)
        self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
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
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _read_requests(self) -> None:
        while True:
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._handle(frames)

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

    def _handle(self, frames: list[bytes]) -> None:
        envelope, body = _split_envelope(frames)
        if len(body) != 1:
            self._reject(envelope, ERROR_SUBJECT, f"expected one message frame, got {len(body)}")
            return
        try:
            request = Message.decode(body[0])
        except Exception as err:  # anything undecodable gets an answer, never silence
            self._reject(envelope, ERROR_SUBJECT, f"invalid request: {_one_line(err)}")
            return
        try:
            if request.type == "push":
                self._push(envelope, request)
                return
            if request.type == "ping":
                reply = self._message(request, "pong", {"station": self.chain.station})
            elif request.type == "ack":
                reply = self._ack(request)
            elif request.type == "info":
                reply = self._info(request)
            else:
                reply = self._message(request, "unknown")
        except _BadRequest as err:
            self._reject(envelope, request.subject, str(err))
            return
        except Exception as err:
            LOG.exception("[%s] handling %s failed", self.chain.name, request.type)
            self._reject(envelope, request.subject, f"server error: {_one_line(err)}")
            return
        self._queue_reply(envelope, reply)

    def _reject(self, envelope: list[bytes], subject: str, reason: str) -> None:
        LOG.warning("[%s] request rejected: %s", self.chain.name, reason)
        self._queue_reply(envelope, Message(subject or ERROR_SUBJECT, "err", reason, version=MESSAGE_VERSION))

    def _message(self, request: Message, atype: str, data: Any = None) -> Message:
        if data is None:
            return Message(request.subject, atype, version=MESSAGE_VERSION)
        return Message(request.subject, atype, data, version=MESSAGE_VERSION)

    def _info(self, request: Message) -> Message:
        data = request.data if isinstance(request.data, dict) else {}
        max_count = data.get("max_count", INFO_MAX_COUNT)
        if not isinstance(max_count, int) or isinstance(max_count, bool) or max_count < 0:
            raise _BadRequest(f"info: max_count must be a non-negative integer, got {max_count!r}")
        files = self._announced.newest(request.subject, min(max_count, INFO_MAX_COUNT))
        uptime = str(dt.timedelta(seconds=time.monotonic() - self._started))
        return self._message(request, "info", {"files": files, "max_count": max_count, "uptime": uptime})

    def _ack(self, request: Message) -> Message:
        data = _request_dict(request)
        if self.chain.delete:
            for item in file_dicts(data):
                self._schedule_delete(item.get("uri"))
        reply = dict(data)
        if isinstance(reply.get("destination"), str):
            reply["destination"] = strip_credentials(reply["destination"])
        return self._message(request, "ack", reply)

    def _push(self, envelope: list[bytes], request: Message) -> None:
        data = _request_dict(request)
        destination = data.get("destination")
        if not isinstance(destination, str) or not destination.strip():
            self._reject(envelope, request.subject, "push without a destination")
            return
        items = list(file_dicts(data))
        if not items:
            self._reject(envelope, request.subject, "push without any uri")
            return
        directories = self._directories()
        jobs = []
        for item in items:
            rel_path = item.get("path")
            if rel_path is not None and not isinstance(rel_path, str):
                self._reject(envelope, request.subject, f"push: path must be a string, got {rel_path!r}")
                return
            try:
                path = check_access(item.get("uri"), self._announced, directories)
            except AccessDenied as err:
                LOG.warning("[%s] push refused for %s: %s", self.chain.name, request.sender, err)
                self._queue_reply(envelope, Message(request.subject, "err", str(err), version=MESSAGE_VERSION))
                return
            jobs.append(FileJob(path, rel_path))
        LOG.info("[%s] push of %s to %s requested by %s", self.chain.name, ", ".join(j.path for j in jobs[:3]),
                 redact(destination), request.sender)
        try:
            future = self._transfers.push(jobs, destination, self.chain.connection_params)
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
                LOG.error("[%s] push failed: %s", self.chain.name, error)
                reply = Message(request.subject, "err", _one_line(error), version=MESSAGE_VERSION)
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


class _BadRequest(Exception):
    """A request that decodes but cannot be served; answered with ``err``."""


def _split_envelope(frames: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Routing frames up to and including the empty delimiter, and the body after it."""
    for index, frame in enumerate(frames):
        if frame == b"" and index > 0:
            return frames[: index + 1], frames[index + 1:]
    return frames[:1], frames[1:]


def _request_dict(request: Message) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise _BadRequest(f"{request.type}: expected a JSON object as data, got {type(request.data).__name__}")
    return request.data


def _reply_type(data: dict[str, Any], request_type: str) -> str:
    for key, atype in (("uri", "file"), ("dataset", "dataset"), ("collection", "collection")):
        if key in data:
            return atype
    return request_type


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
