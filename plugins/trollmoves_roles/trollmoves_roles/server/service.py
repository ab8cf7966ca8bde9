"""The server process: one publisher, a transfer pool, and one chain per config section.

:meth:`Server.serve` is the main loop. It sleeps until something needs doing (a heartbeat,
a chain check, a reload or stop request), so nothing on the file or request path waits on it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from posttroll.message import Message

from trollmoves_core.exceptions import ConfigError
from trollmoves_core.plugins import PluginHost
from trollmoves_core.watchers.base import Watcher
from trollmoves_roles.bus.posttroll import HEARTBEAT_INTERVAL
from trollmoves_roles.bus.transport import Publisher
from trollmoves_roles.observe.metrics import MetricsEndpoint, MetricsServer, RoleMetrics
from trollmoves_roles.runtime.process import ProcessOptions, open_publisher, own_ip, process_bus, reload_chains
from trollmoves_roles.runtime.signals import StopReload
from trollmoves_roles.runtime.transports import transport_for
from trollmoves_roles.server.announced import AnnouncedFiles
from trollmoves_roles.server.announcer import Announcer
from trollmoves_roles.server.config import ServerChainConfig, load_config
from trollmoves_roles.server.deleter import Deleter
from trollmoves_roles.server.listen import ListenRepublisher
from trollmoves_roles.server.requests import RequestServer
from trollmoves_roles.state import history
from trollmoves_roles.state.journal import Journal, journal_path
from trollmoves_roles.transfers.movers import MoverCache
from trollmoves_roles.transfers.service import TransferService

LOG = logging.getLogger(__name__)

PUBLISHER_NAME = "move_it_server"
"""Heartbeats go out on ``/heartbeat/move_it_server``, as upstream's."""


REBIND_SECONDS = 5.0
"""At a reload, how long a restarted chain waits for its old request port to be released."""


WAITING_POLL_SECONDS = 2.0
"""How often chains waiting for their missing origin directory look for it."""


RESCAN_MARGIN = 60.0
"""Seconds before the previous chain check that each rescan also covers (events still in flight)."""


class ChainRecoveryError(RuntimeError):
    """A chain's watcher could not be restarted ``max_notifier_restarts`` times in a row."""


@dataclass
class ServerOptions(ProcessOptions):
    """Command-line settings (upstream flags plus ours)."""

    backlog: bool = True
    announce_delay: float = 0.0
    """At process start, hold announcements this long, so subscribers that were connected before
    a restart have reconnected (pub/sub drops what is sent before they do)."""
    watcher: str = "watchdog"
    chain_check_interval: float = 30.0
    max_notifier_restarts: int = 10
    state_directory: str | None = None
    """Keep the announced-files record in a journal there (None: in memory only)."""


class HeldPublisher:
    """The chains' view of the publisher: announcements sent before :meth:`open` are held, in order,
    and sent then. ``delay`` > 0 sets :attr:`opens_at` (monotonic) for the main loop; 0 opens now.
    :attr:`opened` is set once messages are sent rather than held (the backlogs wait for it)."""

    def __init__(self, publisher: Publisher, delay: float) -> None:
        self._publisher = publisher
        self._held: list[Message] | None = [] if delay > 0 else None
        self._lock = threading.Lock()
        self.opens_at: float | None = time.monotonic() + delay if delay > 0 else None
        self.opened = threading.Event()
        if delay <= 0:
            self.opened.set()

    def send(self, message: Message) -> None:
        with self._lock:
            if self._held is not None:
                self._held.append(message)
                return
        self._publisher.send(message)

    def open(self) -> None:
        with self._lock:
            held, self._held, self.opens_at = self._held or [], None, None
            for message in held:
                self._publisher.send(message)
        self.opened.set()
        if held:
            LOG.info("Sent %d announcement(s) held while subscribers reconnected", len(held))


class ServerChain:
    """A running chain: its source of announcements and, unless standalone, its request server."""

    def __init__(self, config: ServerChainConfig, server: Server, bind_retry: float = 0.0) -> None:
        self.config = config
        self.request_address = None if config.standalone else \
            f"{config.request_address or own_ip()}:{config.request_port}"
        common = {"publisher": server.announcements, "announced": server.announced,
                  "request_address": self.request_address, "metrics": server.metrics}
        self.source: Announcer | ListenRepublisher
        if config.listen:
            self.source = ListenRepublisher(config, transport=server.transport, **common)
        else:
            self.source = Announcer(config, watcher=server.watcher_class, workers=server.transfers,
                                    deleter=server.deleter, backlog_gate=server.announcements.opened, **common)
        self.requests: RequestServer | None = None
        if not config.standalone:
            self.requests = RequestServer(config, bind=server.options.bind, announced=server.announced,
                                          directories=lambda: self.source.directories,
                                          transfers=server.transfers, deleter=server.deleter,
                                          transport=server.transport, bind_retry=bind_retry, metrics=server.metrics,
                                          request_address=self.request_address)
        self.failures = 0
        if self.requests is not None and isinstance(self.source, Announcer):
            self.source.pushes_requested = lambda requests=self.requests: requests.pushes_requested
        if self.requests is not None:
            server.metrics.set_pending(config.name, partial(server.transfers.in_flight, config.name))

    def start(self, backlog: bool) -> None:
        if self.requests is not None:
            if self.config.bwlimit is not None or self.config.bwlimit_per_host is not None:
                LOG.info("[%s] pushes limited to %s for the chain, %s per destination host", self.config.name,
                         self.config.bwlimit or "no limit", self.config.bwlimit_per_host or "no limit")
            self.requests.start()
        self.source.start(backlog)

    def stop(self, drain_timeout: float) -> None:
        self.source.stop()
        if self.requests is not None:
            self.requests.stop(drain_timeout)


class Server(StopReload):
    """Everything ``trollmoves server CONFIG`` runs.

    :param movers: where pushes get their movers (default: a :class:`MoverCache` of ``host``'s movers).
    """

    def __init__(self, config_path: str | os.PathLike[str], options: ServerOptions | None = None, *,
                 host: PluginHost, movers: MoverCache | None = None) -> None:
        self.config_path = Path(config_path)
        self.options = options or ServerOptions()
        self.watcher_class = host.watchers.get(self.options.watcher)  # fails early on a missing plugin
        configs = load_config(self.config_path)
        # before anything is opened: a bad bus leaves nothing to close
        self.transport = transport_for(host, process_bus(self.options.bus, configs.values()))
        self.metrics = RoleMetrics("server")
        self.announced = AnnouncedFiles()
        self.journal: Journal | None = None
        self.pushed_journal: Journal | None = None
        self.history: history.History | None = None
        if self.options.state_directory:
            self.journal = self._open_journal(self.options.state_directory)
        try:
            self.metrics_endpoint = MetricsEndpoint(self.metrics, self.config_path, self.options.metrics_port,
                                                    self.options.metrics_bind)
        except ConfigError:
            self._close_journal()
            raise
        self.deleter = Deleter(on_delete=self.announced.discard)
        self.transfers = TransferService(self.options.workers, host=host, metrics=self.metrics, movers=movers)
        if self.pushed_journal is not None:
            restored = self.transfers.finished.attach(self.pushed_journal)
            LOG.info("State in %s: %d finished push(es) restored", self.pushed_journal.path, restored)
        try:
            self.publisher = open_publisher(self.transport, self.options.bind, self.options.port, PUBLISHER_NAME)
        except ConfigError:
            self.transfers.close(0)
            self.deleter.stop()
            self._close_journal()
            self.metrics_endpoint.stop()
            raise
        self.announcements = HeldPublisher(self.publisher, self.options.announce_delay)
        self.chains: dict[str, ServerChain] = {}
        super().__init__()  # its pipe is closed by close(), which every failure from here on goes through
        self._config_watcher: Watcher | None = None
        self._closed = False
        self._served = False
        self._last_check = time.time()
        try:
            for name, config in configs.items():
                self.chains[name] = ServerChain(config, self)
        except BaseException:
            self.close()
            raise

    def _open_journal(self, directory: str) -> Journal:
        path = journal_path(directory, self.config_path, "server")
        try:
            journal = Journal(path, table="announced")
            # repeats of pushes finished before a restart are answered as done (same file, own table)
            self.pushed_journal = Journal(path, table="pushed")
        except (OSError, sqlite3.Error) as err:
            raise ConfigError(f"cannot keep state in {path}: {getattr(err, 'strerror', None) or err}") from None
        restored = self.announced.attach(journal)
        LOG.info("State in %s: %d announced file(s) restored", path, restored)
        self.history = history.open_history(path, "server", self.config_path)
        return journal

    def _close_journal(self) -> None:
        if self.pushed_journal is not None:
            if hasattr(self, "transfers"):
                self.transfers.finished.detach()
            self.pushed_journal.close()
            self.pushed_journal = None
        if self.journal is not None:
            self.announced.detach()
            self.journal.close()
            self.journal = None
            history.close_history(self.history)
            self.history = None

    @property
    def metrics_server(self) -> MetricsServer | None:
        """The metrics HTTP server (None without ``metrics_port``)."""
        return self.metrics_endpoint.server

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start every chain (backlog included unless disabled) and watching the config file."""
        for chain in self.chains.values():
            chain.start(self.options.backlog)
        self.publisher.heartbeat(HEARTBEAT_INTERVAL)
        self.metrics_endpoint.start()
        if self.options.watch_config:
            self._watch_config()

    def serve(self) -> int:
        """Run until :meth:`request_stop`; return the exit status."""
        self._served = True
        next_check = time.monotonic() + self.options.chain_check_interval
        next_beat = time.monotonic() + HEARTBEAT_INTERVAL
        next_poll = time.monotonic() + WAITING_POLL_SECONDS
        status = 0
        while not self.stop_requested:
            # a hair past the deadline, so the publisher's own rate limit lets the beat through
            due = min(next_check, next_beat, self.announcements.opens_at or next_beat)
            if self.waiting_chains():
                due = min(due, next_poll)
            self.wakeup.wait(max(0.0, due - time.monotonic() + 0.01))
            if self.stop_requested:
                break
            if self.announcements.opens_at is not None and time.monotonic() >= self.announcements.opens_at:
                self.announcements.open()
            if self.reload_requested:
                self.reload_requested = False
                self.reload()
            if time.monotonic() >= next_beat:
                self.publisher.heartbeat(HEARTBEAT_INTERVAL)
                next_beat = time.monotonic() + HEARTBEAT_INTERVAL
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + WAITING_POLL_SECONDS
                for chain in self.waiting_chains():
                    chain.resume(time.monotonic())
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self.options.chain_check_interval
                try:
                    self.check_chains()
                except ChainRecoveryError as err:
                    LOG.critical("%s", err)
                    status = 1
                    break
        return status

    def close(self) -> None:
        """Stop the chains (letting running pushes finish, bounded), then the rest."""
        if self._closed:
            return
        self._closed = True
        if self._config_watcher is not None:
            self._config_watcher.stop()
            self._config_watcher = None
        for chain in self.chains.values():
            chain.source.stop()
        for chain in self.chains.values():
            if chain.requests is not None:
                chain.requests.stop(self.options.drain_timeout)
        self.chains.clear()
        self.transfers.close(self.options.drain_timeout)
        self.deleter.stop()
        self.publisher.stop()
        self.metrics_endpoint.stop()
        self._close_journal()
        self.wakeup.close()
        if self._served:  # a start-up failure is said by the error line alone
            LOG.info("Server stopped")

    def reload(self) -> bool:
        """Re-read the config: restart changed chains, start new ones, stop removed ones.

        A config that does not load is logged and the running chains are kept.
        """
        try:
            configs = load_config(self.config_path)
        except ConfigError as err:
            LOG.error("Config reload rejected, keeping the running config: %s", err)
            return False
        if not configs and self.chains:
            # most likely a file caught mid-write or emptied by mistake: stopping everything is never right
            LOG.error("Config reload rejected, keeping the running config: %s defines no chain", self.config_path)
            return False

        def stop(chains: list[ServerChain]) -> None:
            for chain in chains:
                chain.stop(self.options.drain_timeout)

        def start(config: ServerChainConfig) -> ServerChain:
            chain = ServerChain(config, self, bind_retry=REBIND_SECONDS)
            chain.start(self.options.backlog)
            return chain

        before = set(self.chains)
        reload_chains(self.chains, configs, stop=stop, start=start)
        for name in before - set(self.chains):  # removed, or changed and could not start again
            self.metrics.drop_pending(name)
        return True

    def waiting_chains(self) -> list[Announcer]:
        """The announcers waiting for their missing origin directory."""
        return [c.source for c in self.chains.values() if isinstance(c.source, Announcer) and c.source.waiting]

    def check_chains(self) -> None:
        """Restart the watcher of any chain whose directory was replaced (one whose directory
        vanished waits for it, never counted as a failure); rescan the others for files changed
        since the previous check (and a margin) the watcher missed."""
        now = time.time()
        since = self._last_check - RESCAN_MARGIN
        self._last_check = now
        for chain in self.chains.values():
            if isinstance(chain.source, Announcer) and chain.source.waiting:
                chain.failures = 0
                continue
            if chain.source.healthy():
                chain.failures = 0
                if isinstance(chain.source, Announcer):
                    chain.source.rescan(since)
                continue
            LOG.warning("[%s] watcher not running on its directory, restarting it", chain.config.name)
            chain.source.stop()
            if chain.source.start(backlog=True) or (isinstance(chain.source, Announcer) and chain.source.waiting):
                chain.failures = 0
                continue
            chain.failures += 1
            limit = self.options.max_notifier_restarts
            if limit and chain.failures >= limit:
                raise ChainRecoveryError(f"[{chain.config.name}] watcher failed to restart {chain.failures} times")

    def _watch_config(self) -> None:
        target = self.config_path.resolve()

        def changed(path: str) -> None:
            if os.path.realpath(path) == str(target):
                LOG.info("%s changed on disk, reloading", self.config_path)
                self.request_reload()

        try:
            self._config_watcher = self.watcher_class([target.parent], changed, interval=1.0)
            self._config_watcher.start()
        except (OSError, RuntimeError) as err:
            LOG.warning("Not watching %s for changes: %s (SIGHUP still reloads)", self.config_path, err)
            self._config_watcher = None
