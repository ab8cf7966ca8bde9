"""The client process: chains from the config, their publishers, signals and reloads.

Publishers follow upstream's choice (``upstream-trollmoves.md`` §1.5) except that they never
multicast: ``nameservers = false`` with a fixed ``publish_port`` gives a plain publisher, a
nameserver list registers with those hosts only, and a config with which upstream would
multicast gets a plain publisher and a warning. Chains with the same publisher settings share
one publisher.

SIGTERM/SIGINT stop the process; SIGHUP, or a change of the config file, reloads it: only the
chains whose section changed are restarted (keeping their uid cache), removed ones are
stopped, new ones started. A config that fails to load on reload is logged and ignored.

With ``state_directory`` set, the chains journal their state in
``<state_directory>/client-<config file name>.sqlite`` (one table per chain, see
:mod:`trollmoves_roles.client.state`); a chain restarted by a reload resumes from it too.

Every chain counts into one :class:`~trollmoves_roles.observe.metrics.RoleMetrics` (label ``chain``),
served with ``--metrics-port``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Hashable

from trollmoves_core.exceptions import ConfigError
from trollmoves_core.plugins import PluginHost
from trollmoves_roles.bus.transport import MessageTransport, Publisher
from trollmoves_roles.client.chain import ClientChain
from trollmoves_roles.client.config import ClientChainConfig, load_client_config
from trollmoves_roles.client.state import ChainState
from trollmoves_roles.observe.metrics import MetricsEndpoint, RoleMetrics
from trollmoves_roles.runtime.observers import ChainObservers
from trollmoves_roles.runtime.process import process_bus
from trollmoves_roles.runtime.signals import install_signal_handlers
from trollmoves_roles.runtime.transports import transport_for
from trollmoves_roles.state import history
from trollmoves_roles.state.journal import journal_path

LOG = logging.getLogger(__name__)

CONFIG_CHECK_INTERVAL = 1.0
"""Seconds between checks of the config file for changes."""


def publisher_key(config: ClientChainConfig) -> Hashable:
    """Chains with equal keys share a publisher (a random port is never shared)."""
    nameservers = config.nameservers if isinstance(config.nameservers, tuple) else ()
    own = config.name if config.publish_port == 0 else None
    return (config.bind_address, config.publish_port, nameservers, own)


class Publishers:
    """Reference-counted publishers keyed by :func:`publisher_key`, opened with ``transport``."""

    def __init__(self, transport: MessageTransport) -> None:
        self._transport = transport
        self._publishers: dict[Hashable, tuple[Publisher, int]] = {}

    def acquire(self, config: ClientChainConfig) -> Publisher:
        key = publisher_key(config)
        if key in self._publishers:
            publisher, count = self._publishers[key]
            self._publishers[key] = (publisher, count + 1)
            return publisher
        try:
            publisher = self._open(config)
        except ConfigError as err:
            raise ConfigError(err.message, file=config.file, section=config.name, key="publish_port") from None
        self._publishers[key] = (publisher, 1)
        return publisher

    def release(self, config: ClientChainConfig) -> None:
        key = publisher_key(config)
        publisher, count = self._publishers[key]
        if count > 1:
            self._publishers[key] = (publisher, count - 1)
        else:
            del self._publishers[key]
            publisher.stop()

    def stop_all(self) -> None:
        for publisher, _ in self._publishers.values():
            publisher.stop()
        self._publishers.clear()

    def _open(self, config: ClientChainConfig) -> Publisher:
        name = f"move_it_{config.name}"
        address = f"tcp://{config.bind_address}:{config.publish_port}"
        nameservers = config.nameservers
        if isinstance(nameservers, tuple) and nameservers:
            publisher = self._transport.publisher(address, name=name, nameservers=nameservers)
            LOG.info("[%s] Publishing on port %d, registered with nameserver(s) %s", config.name, publisher.port,
                     ", ".join(nameservers))
            return publisher
        if nameservers is not False:
            LOG.warning("[%s] nameservers is not set: upstream would announce this publisher by multicast. "
                        "Trollmoves never multicasts; set 'nameservers = false' with a fixed publish_port, "
                        "or list the nameservers to register with", config.name)
        elif config.publish_port == 0:
            LOG.warning("[%s] publish_port is 0 with nameservers = false: upstream would multicast; publishing on "
                        "a random port no one can look up. Set a fixed publish_port", config.name)
        publisher = self._transport.publisher(address, name=name)
        LOG.info("[%s] Publishing on tcp://%s:%d", config.name, config.bind_address, publisher.port)
        return publisher


class ClientProcess:
    """Run the chains of ``config_file`` until :meth:`stop` (or SIGTERM/SIGINT).

    ``metrics_port`` (None: none) serves the metrics on ``metrics_bind``; ``bus`` names the broker
    (None: ZeroMQ sockets).
    """

    def __init__(self, config_file: str | os.PathLike[str], *, host: PluginHost, metrics_port: int | None = None,
                 metrics_bind: str = "127.0.0.1", bus: str | None = None) -> None:
        self.config_file = os.fspath(config_file)
        self.host = host
        self.configs = load_client_config(self.config_file, host)
        # before the metrics endpoint binds: a bad bus leaves nothing to close
        self.transport = transport_for(host, process_bus(bus, self.configs.values()))
        self.metrics = RoleMetrics("client")
        self.metrics.set_queue_length(self._queue_length)
        self.metrics_endpoint = MetricsEndpoint(self.metrics, self.config_file, metrics_port, metrics_bind)
        self.chains: dict[str, ClientChain] = {}
        self.history: history.History | None = None
        """The file history, in the journal of the first chain with a ``state_directory``."""
        self.publishers = Publishers(self.transport)
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._stamp = self._file_stamp()
        self.started = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        """Reload at the next config check (within :data:`CONFIG_CHECK_INTERVAL`), as SIGHUP does."""
        self._reload.set()

    def run(self) -> int:
        """Serve until stopped; return the exit status (0)."""
        restore = install_signal_handlers(self._stop.set, self._reload.set)
        try:
            self._apply(self.configs)
            self.metrics_endpoint.start()
            self.started.set()
            while not self._stop.wait(CONFIG_CHECK_INTERVAL):
                stamp = self._file_stamp()
                if self._reload.is_set() or (stamp != self._stamp and stamp is not None):
                    self._reload.clear()
                    self._stamp = stamp
                    self.reload()
        finally:
            if self.chains:  # a start-up failure is said by the error line alone
                LOG.info("Stopping %d chain(s)", len(self.chains))
            for chain in self.chains.values():
                chain.stop()
            self.chains.clear()
            self.publishers.stop_all()
            self.metrics_endpoint.stop()
            history.close_history(self.history)
            self.history = None
            restore()
        return 0

    def reload(self) -> None:
        """Re-read the config file and apply the differences."""
        try:
            configs = load_client_config(self.config_file, self.host)
            LOG.info("Reloading %s", self.config_file)
            self._apply(configs)
        except ConfigError as err:
            LOG.error("Config reload failed, keeping the running config: %s", err)

    def _apply(self, configs: dict[str, ClientChainConfig]) -> None:
        for name in [n for n in self.chains if n not in configs]:
            LOG.info("[%s] Chain removed", name)
            self._stop_chain(name)
        for name, config in configs.items():
            running = self.chains.get(name)
            if running is not None and running.config == config:
                continue
            publisher = self.publishers.acquire(config)  # before releasing, so a kept port is never rebound
            cache = None
            if running is not None:
                LOG.info("[%s] Chain changed; restarting it", name)
                cache = running.cache
                self._stop_chain(name)
            try:
                state = self._open_state(config)
            except ConfigError:
                self.publishers.release(config)
                raise
            try:
                observers = ChainObservers.open(self.host, config.metadata, role="client", chain=name,
                                                file=config.file)
            except ConfigError:
                self.publishers.release(config)
                raise
            try:
                self.chains[name] = ClientChain(config, publisher, transport=self.transport, cache=cache, state=state,
                                                metrics=self.metrics, observers=observers).start()
            except ConfigError:
                observers.close()
                self.publishers.release(config)
                raise
        self.configs = configs

    def _open_state(self, config: ClientChainConfig) -> ChainState:
        if not config.state_directory:
            return ChainState()
        path = journal_path(config.state_directory, self.config_file, "client")
        try:
            state = ChainState.open(path, config.name)
        except (OSError, ValueError, sqlite3.Error) as err:
            raise ConfigError(f"cannot keep the journal {path}: {err}", file=config.file, section=config.name,
                              key="state_directory") from None
        LOG.info("[%s] Journal in %s: %s", config.name, path, state.summary())
        if self.history is None:
            self.history = history.open_history(path, "client", self.config_file)
        return state

    def _stop_chain(self, name: str) -> None:
        chain = self.chains.pop(name)
        chain.stop()
        self.metrics.drop_pending(name)
        self.publishers.release(chain.config)

    def _queue_length(self) -> float:
        """Files announced and not settled yet, over every chain."""
        return float(sum(chain.queue_length() for chain in list(self.chains.values())))

    def _file_stamp(self) -> tuple[int, int, float] | None:
        try:
            info = os.stat(self.config_file)
        except OSError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime)
