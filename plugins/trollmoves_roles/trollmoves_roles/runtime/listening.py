"""The message loop the dispatcher and the downloader share.

A :class:`ListeningService` subscribes to its configured publishers (and those its nameservers
name) on its topics plus the heartbeats, resumes what its journal holds, hands every message to
:meth:`~ListeningService.handle`, and re-reads its configuration on
:meth:`~ListeningService.request_reload` (SIGHUP) or when the file changes, keeping the old one
when the new one does not load. At the end it finishes the running transfers and closes
everything. The sender of every message received is a peer in the metrics.
"""

from __future__ import annotations

import argparse
import logging
import threading
from abc import ABC, abstractmethod
from typing import Any

from posttroll.message import Message

from trollmoves_core.exceptions import ConfigError
from trollmoves_core.plugins import PluginHost
from trollmoves_roles.bus.posttroll import HEARTBEAT_TOPIC, NameserverLookup
from trollmoves_roles.bus.security import CurveClient
from trollmoves_roles.bus.transport import MessageTransport, Subscriber
from trollmoves_roles.observe.metrics import RoleMetrics
from trollmoves_roles.runtime.configwatch import ConfigFileMonitor
from trollmoves_roles.state.pending import PendingMessage, PendingMessages
from trollmoves_roles.transfers.movers import MoverCache
from trollmoves_roles.transfers.pool import BoundedPool

LOG = logging.getLogger(__name__)


def add_listening_arguments(parser: argparse.ArgumentParser, role: str, *, workers: int | None,
                            workers_help: str) -> None:
    """The options the dispatcher and downloader share: where else to listen, how many workers,
    the journal, where the publisher binds and the metrics."""
    from trollmoves_roles.observe.metrics import add_metrics_arguments
    from trollmoves_roles.runtime.process import add_bus_argument
    from trollmoves_roles.state.history import add_history_arguments

    parser.add_argument("-s", "--subscribe-address", action="append", default=[], metavar="ADDR",
                        help="also subscribe to this publisher (host:port or tcp://host:port; repeatable)")
    parser.add_argument("--publish-bind", default="*", metavar="ADDR",
                        help="address the publisher binds to (default: all interfaces)")
    parser.add_argument("--workers", type=int, default=workers, metavar="N", help=workers_help)
    parser.add_argument("--state-directory", metavar="DIR", default=None,
                        help=f"journal unfinished messages in DIR/{role}-<config name>.sqlite and resume "
                             "them after a restart (default: no journal)")
    add_history_arguments(parser)
    add_metrics_arguments(parser)
    add_bus_argument(parser)


class ListeningService(ABC):
    """Receive messages and hand them to :meth:`handle` until halted (see the module docstring).

    Subclasses set the attributes below in ``__init__`` and call :meth:`watch_config`.
    """

    config_path: str
    transport: MessageTransport
    metrics: RoleMetrics
    pending: PendingMessages
    pool: BoundedPool
    movers: MoverCache
    _reload: threading.Event
    _monitor: ConfigFileMonitor | None

    def watch_config(self, host: PluginHost, watch: bool) -> None:
        """Reload on request from now on, and when the file changes if ``watch``."""
        self._reload = threading.Event()
        self._monitor = ConfigFileMonitor(self.config_path, host) if watch else None
        if self._monitor:
            self._monitor.mark_loaded()

    # -- what subclasses provide ---------------------------------------------------------

    @abstractmethod
    def handle(self, message: Message, halt: threading.Event | None = None) -> Any:
        """Act on one message; never raises."""

    @abstractmethod
    def _resume(self, item: PendingMessage, halt: threading.Event | None) -> Any:
        """Finish a message the journal holds from an earlier run."""

    @abstractmethod
    def _topics(self) -> list[str]:
        """The configured topics."""

    @abstractmethod
    def _addresses(self) -> list[str]:
        """The publishers to subscribe to."""

    @abstractmethod
    def _lookup(self) -> NameserverLookup:
        """A (not started) lookup of publishers in the nameservers."""

    @abstractmethod
    def _load(self) -> Any:
        """The configuration read again from :attr:`config_path` (raises when it does not load)."""

    @abstractmethod
    def _apply(self, config: Any) -> None:
        """Use ``config`` from now on (and log it)."""

    def _curve(self) -> CurveClient | None:
        """The CURVE keys of the subscription (``client_secret_key_file`` with
        ``publisher_public_key_file``), None for none. Read at start: a change needs a restart."""
        return None

    def _describe(self, subscription: Subscriber, lookup: NameserverLookup) -> None:
        """Log what the service listens to, at start."""
        LOG.info("Listening to %s on %s (nameservers: %s)", ", ".join(self._topics()),
                 ", ".join(subscription.addresses) or "-", ", ".join(lookup.nameservers) or "-")

    # -- the loop ---------------------------------------------------------------------------

    def serve(self, halt: threading.Event) -> None:
        """Receive and handle messages until ``halt`` is set; then finish running transfers."""
        subscription = self.transport.subscriber(self._addresses(), [*self._topics(), HEARTBEAT_TOPIC],
                                                 security=self._curve())
        lookup = self._lookup().start()
        self._describe(subscription, lookup)
        try:
            self.pending.resume(lambda item: self._resume(item, halt))
            while not halt.is_set():
                for address in lookup.new_addresses():
                    subscription.try_add(address)
                if self._reload.is_set() or (self._monitor and self._monitor.changed()):
                    self._reload.clear()
                    if self.reload():
                        subscription.set_topics([*self._topics(), HEARTBEAT_TOPIC])
                        for address in self._addresses():
                            subscription.try_add(address)
                        lookup.stop()
                        lookup = self._lookup().start()
                message = subscription.recv(0.2)
                if message is not None:
                    self.metrics.peer_seen(message.sender)
                    self.handle(message, halt)
        finally:
            lookup.stop()
            subscription.close()
            if self._monitor:
                self._monitor.stop()
            self.pool.shutdown()
            self.movers.close_all()
            self.pending.close()

    def request_reload(self) -> None:
        """Re-read the configuration at the next chance; callable from a signal handler."""
        self._reload.set()

    def reload(self) -> bool:
        """Re-read the configuration; keep the old one when the new one is broken."""
        if self._monitor:
            self._monitor.mark_loaded()
        try:
            config = self._load()
        except ConfigError as err:
            LOG.error("New configuration rejected, keeping the previous one: %s", err)
            return False
        except Exception as err:  # anything else a half-written or odd file causes
            LOG.error("New configuration rejected, keeping the previous one: %s: %s", self.config_path, err)
            return False
        self._apply(config)
        return True
