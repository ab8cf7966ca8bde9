"""``listen`` chains: serve files another process announced on the bus.

Each ``file``/``dataset``/``collection`` message received on ``addresses`` under the
``listen`` topic whose files are all local and present is republished under the chain's
``topic`` with ``request_address`` added; those files may then be pushed. Unlike upstream,
a message naming a remote file is skipped with a warning instead of stopping the chain.
"""

from __future__ import annotations

import logging
import os
import threading
from urllib.parse import urlsplit

from posttroll.message import Message

from trollmoves_roles.bus.transport import MessageTransport, Publisher
from trollmoves_roles.observe.metrics import RoleMetrics
from trollmoves_roles.observe.ratelimit import RateLimitedLog
from trollmoves_roles.protocol.messages import FILE_TYPES, MESSAGE_VERSION, dicts_with
from trollmoves_roles.server.announced import AnnouncedFiles
from trollmoves_roles.server.config import ServerChainConfig
from trollmoves_roles.state import history

LOG = logging.getLogger(__name__)
_LIMITED = RateLimitedLog(LOG)



class ListenRepublisher:
    """The receiving half of a ``listen`` chain."""

    def __init__(self, chain: ServerChainConfig, *, publisher: Publisher, announced: AnnouncedFiles,
                 request_address: str | None, transport: MessageTransport, metrics: RoleMetrics | None = None) -> None:
        assert chain.listen is not None
        self.chain = chain
        self._transport = transport
        self._publisher = publisher
        self._announced = announced
        self._request_address = request_address
        self._metrics = metrics or RoleMetrics("server")
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def directories(self) -> None:
        return None

    @property
    def watching(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, backlog: bool = False) -> bool:
        self._subscription = self._transport.subscriber(self.chain.listen_addresses, [self.chain.listen])
        self._thread = threading.Thread(target=self._run, name=f"listen-{self.chain.name}", daemon=True)
        self._thread.start()
        LOG.info("[%s] listening to %s on %s", self.chain.name, self.chain.listen,
                 ", ".join(self.chain.listen_addresses))
        return True

    def healthy(self) -> bool:
        return self.watching

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        try:
            while not self._halt.is_set():
                message = self._subscription.recv(0.5)
                if message is None:
                    continue
                try:
                    self.handle(message)
                except Exception:  # one odd message must not stop the chain
                    self._metrics.bad_input.inc(chain=self.chain.name)
                    _LIMITED.error("error", "[%s] cannot handle a %s message", self.chain.name, message.type,
                                   exc_info=True)
        finally:
            self._subscription.close()

    def handle(self, message: Message) -> None:
        if message.type not in FILE_TYPES:
            return
        if not isinstance(message.data, dict):
            self._metrics.bad_input.inc(chain=self.chain.name)
            _LIMITED.warning("bad", "[%s] skipping a %s message without a JSON object", self.chain.name, message.type)
            return
        paths = []
        for item in dicts_with(message.data, "uri"):
            uri = item.get("uri")
            try:
                parts = urlsplit(uri) if isinstance(uri, str) and "\x00" not in uri else None
            except ValueError:  # e.g. an unbalanced "[" in the host part
                parts = None
            if parts is None or parts.scheme not in ("", "file") or not os.path.isfile(parts.path):
                self._metrics.bad_input.inc(chain=self.chain.name)
                _LIMITED.warning("not local", "[%s] skipping message about a file that is not local: %.200r",
                                 self.chain.name, uri)
                return
            paths.append((parts.path, item.get("uid") or os.path.basename(parts.path)))
        if not paths:
            return
        data = dict(message.data)
        if self._request_address is not None:
            data["request_address"] = self._request_address
        listed = (self.chain.topic, message.type, data) if self._request_address is not None else None
        self._announced.announce([(path, str(uid)) for path, uid in paths], self.chain.topic, self.chain.name,
                                 message=listed)
        self._publisher.send(Message(self.chain.topic, message.type, data, version=MESSAGE_VERSION))
        self._metrics.announced.inc(len(paths), chain=self.chain.name)
        LOG.info("[%s] republished %s", self.chain.name, paths[0][0])
        for path, uid in paths:
            history.record("republished", chain=self.chain.name, uid=str(uid), path=path, detail=self.chain.topic)
