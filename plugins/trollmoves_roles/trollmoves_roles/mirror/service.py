"""The mirror process: one publisher (``-p``), a transfer pool, and one chain per config section.

:meth:`Mirror.serve` is the main loop: it sends heartbeats on ``/heartbeat/move_it_mirror``
(the first one second after start, as upstream's processes do, then every 30 s) and reloads
the config on request (SIGHUP) or when the file changes. A reload restarts only the sections
whose settings changed (their pending pushes are finished first), stops removed ones and
starts new ones; a config that does not load is logged and the running one kept. Nothing on
the file or request path waits on this loop.

Every section counts into one :class:`~trollmoves_roles.observe.metrics.RoleMetrics` (label ``chain``),
served with ``--metrics-port``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from trollmoves_core.exceptions import ConfigError
from trollmoves_core.plugins import PluginHost
from trollmoves_roles.bus.posttroll import HEARTBEAT_INTERVAL
from trollmoves_roles.mirror.chain import MirrorChain
from trollmoves_roles.mirror.config import MirrorConfig, load_mirror_config
from trollmoves_roles.observe.metrics import MetricsEndpoint, RoleMetrics
from trollmoves_roles.runtime.configwatch import signature
from trollmoves_roles.runtime.process import ProcessOptions, open_publisher, reload_chains
from trollmoves_roles.runtime.signals import StopReload
from trollmoves_roles.runtime.transports import transport_for
from trollmoves_roles.transfers.service import TransferService

LOG = logging.getLogger(__name__)

PUBLISHER_NAME = "move_it_mirror"
"""Heartbeats go out on ``/heartbeat/move_it_mirror``, as upstream's mirror names them."""

FIRST_HEARTBEAT = 1.0
"""Seconds from start to the first heartbeat, so subscribers started with us see it."""

CONFIG_CHECK_INTERVAL = 1.0
"""Seconds between checks of the config file for changes."""

REBIND_SECONDS = 5.0
"""At a reload, how long a restarted section waits for its old request port to be released."""


@dataclass
class MirrorOptions(ProcessOptions):
    """Command-line settings (the server's, without its watching and state options)."""


class Mirror(StopReload):
    """Everything ``trollmoves mirror CONFIG`` runs."""

    def __init__(self, config_path: str | os.PathLike[str], options: MirrorOptions | None = None, *,
                 host: PluginHost) -> None:
        self.config_path = Path(config_path)
        self.options = options or MirrorOptions()
        self.configs = load_mirror_config(self.config_path)
        self.metrics = RoleMetrics("mirror")
        self.metrics_endpoint = MetricsEndpoint(self.metrics, self.config_path, self.options.metrics_port,
                                                self.options.metrics_bind)
        self.transfers = TransferService(self.options.workers, host=host, metrics=self.metrics, log_transfers=False)
        try:
            self.transport = transport_for(host, self.options.bus)
            self.publisher = open_publisher(self.transport, self.options.bind, self.options.port, PUBLISHER_NAME)
        except ConfigError:
            self.transfers.close(0)
            self.metrics_endpoint.stop()
            raise
        self.chains: dict[str, MirrorChain] = {}
        super().__init__()  # its pipe is closed by close(), which every failure from here on goes through
        self._stamp = signature(self.config_path)
        self._closed = False
        self._served = False
        try:
            for name, config in self.configs.items():
                self.chains[name] = MirrorChain(config, publisher=self.publisher, transfers=self.transfers,
                                                transport=self.transport,
                                                bind=self.options.bind, metrics=self.metrics)
        except BaseException:
            self.close()
            raise

    def start(self) -> None:
        for chain in self.chains.values():
            chain.start()
        self.metrics_endpoint.start()

    def serve(self) -> int:
        """Run until :meth:`request_stop`; return the exit status."""
        self._served = True
        next_beat = time.monotonic() + FIRST_HEARTBEAT
        next_check = time.monotonic() + CONFIG_CHECK_INTERVAL
        while not self.stop_requested:
            timeout = max(0.0, min(next_beat, next_check if self.options.watch_config else next_beat)
                          - time.monotonic())
            self.wakeup.wait(timeout)
            if self.stop_requested:
                break
            now = time.monotonic()
            if self.options.watch_config and now >= next_check:
                next_check = now + CONFIG_CHECK_INTERVAL
                stamp = signature(self.config_path)
                if stamp is not None and stamp != self._stamp:
                    LOG.info("%s changed on disk, reloading", self.config_path)
                    self.reload_requested = True
            if self.reload_requested:
                self.reload_requested = False
                self._stamp = signature(self.config_path)
                self.reload()
            if time.monotonic() >= next_beat:
                self.publisher.heartbeat(HEARTBEAT_INTERVAL)
                next_beat = time.monotonic() + HEARTBEAT_INTERVAL + 0.01
        return 0

    def reload(self) -> bool:
        """Re-read the config: restart changed sections, start new ones, stop removed ones."""
        try:
            configs = load_mirror_config(self.config_path)
        except ConfigError as err:
            LOG.error("Config reload rejected, keeping the running config: %s", err)
            return False

        def start(config: MirrorConfig) -> MirrorChain:
            return MirrorChain(config, publisher=self.publisher, transfers=self.transfers, transport=self.transport,
                               bind=self.options.bind, bind_retry=REBIND_SECONDS, metrics=self.metrics).start()

        reload_chains(self.chains, configs, stop=self._stop_chains, start=start, noun="section")
        self.configs = configs
        return True

    def _stop_chains(self, chains: list[MirrorChain]) -> None:
        """Stop ``chains`` together, letting their pending pushes finish (bounded)."""
        for chain in chains:
            chain.begin_stop(self.options.drain_timeout)
        for chain in chains:
            chain.join(self.options.drain_timeout)

    def close(self) -> None:
        """Stop the chains (letting pending pushes finish, bounded), then the pool and publisher."""
        if self._closed:
            return
        self._closed = True
        self._stop_chains(list(self.chains.values()))
        self.chains.clear()
        self.transfers.close(self.options.drain_timeout)
        self.publisher.stop()
        self.metrics_endpoint.stop()
        self.wakeup.close()
        if self._served:  # a start-up failure is said by the error line alone
            LOG.info("Mirror stopped")
