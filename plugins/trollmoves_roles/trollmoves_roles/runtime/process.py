"""What the publishing processes (server, mirror) share: their options, their publisher, reloading
their chains, and the address other hosts reach them on."""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from trollmoves_core.exceptions import ConfigError, UnknownPluginError
from trollmoves_core.plugins import PluginHost
from trollmoves_core.schema import Findings
from trollmoves_roles.bus.transport import MessageTransport, Publisher
from trollmoves_roles.runtime.transports import transport_for
from trollmoves_roles.transfers.service import DEFAULT_WORKERS

LOG = logging.getLogger(__name__)


@dataclass
class ProcessOptions:
    """The command-line settings of a process that publishes and serves requests (server, mirror)."""

    port: int = 9010
    bind: str = "*"
    workers: int = DEFAULT_WORKERS
    drain_timeout: float = 30.0
    watch_config: bool = True
    metrics_port: int | None = None
    """Serve Prometheus metrics on this port (None: no metrics endpoint; 0: any free port)."""
    metrics_bind: str = "127.0.0.1"
    bus: str | None = None
    """The broker's bus address (``--bus``; None: ZeroMQ sockets)."""


def add_publisher_arguments(parser: argparse.ArgumentParser) -> None:
    """``-p/--port`` and ``--bind``, as the server and the mirror spell them."""
    parser.add_argument("-p", "--port", type=int, default=9010,
                        help="port to publish announcements and heartbeats on (default: 9010)")
    parser.add_argument("--bind", default="*", metavar="ADDRESS",
                        help="address the publisher and request sockets bind to (default: * = all)")
    add_bus_argument(parser)


def add_bus_argument(parser: argparse.ArgumentParser) -> None:
    """``--bus URL``: the message broker every role's traffic goes through instead of ZeroMQ sockets."""
    parser.add_argument("--bus", metavar="URL",
                        help="publish, subscribe and send requests through this message broker, e.g. "
                             "mqtts://user@broker:8883/prefix?password_file=FILE (needs the plugin for its "
                             "scheme; default: ZeroMQ sockets, as upstream)")



def process_bus(option: str | None, configs: Iterable[Any]) -> str | None:
    """The bus of a process: ``--bus``, else the one ``bus`` its sections name (a ConfigError
    when they name different ones), else None (ZeroMQ)."""
    if option:
        return option
    named = {config.name: config.bus for config in configs if getattr(config, "bus", None)}
    if len(set(named.values())) > 1:
        raise ConfigError("sections name different buses (" + ", ".join(f"[{n}]" for n in sorted(named))
                          + "): one process uses one bus", key="bus")
    return next(iter(named.values()), None)


def check_bus(out: Findings, configs: Iterable[Any], host: PluginHost) -> None:
    """Record in ``out`` why a process of ``configs`` would not get its bus (sections naming
    different ones, an address its transport refuses, no plugin for its scheme), as it starts."""
    try:
        transport_for(host, process_bus(None, configs))
    except ConfigError as err:
        out.add_error(err)
    except UnknownPluginError as err:
        out.add(str(err), key="bus")


@contextlib.contextmanager
def naming_config(path: str) -> Iterator[None]:
    """Re-raise a start-up ConfigError that names no file (a port in use...) as one naming
    ``path``, so the one line says which process's configuration failed."""
    try:
        yield
    except ConfigError as err:
        if err.file:
            raise
        raise ConfigError(err.message, file=path, section=err.section, key=err.key) from None


def open_publisher(transport: MessageTransport, bind: str, port: int, name: str,
                   nameservers: Iterable[str] | None = None) -> Publisher:
    """A process's publisher on ``bind:port`` (0: a free port), registered with ``nameservers``;
    a ConfigError names the address it cannot bind."""
    return transport.publisher(f"tcp://{bind}:{port}", name=name, nameservers=nameservers)


def reload_chains(chains: dict[str, Any], configs: Mapping[str, Any], *, stop: Callable[[list[Any]], None],
                  start: Callable[[Any], Any], noun: str = "chain") -> None:
    """Make ``chains`` (name → a running chain with a ``config``) run ``configs`` (name → config).

    The chains whose config changed or went are taken out and given to ``stop``; then a chain
    is made and started by ``start(config)`` for each changed or new config. One that cannot
    start (ConfigError) is logged and left out; the others run. ``noun`` names a chain in the log.
    """
    changed = [name for name, chain in chains.items() if configs.get(name) != chain.config]
    added = [name for name in configs if name not in chains]
    if not changed and not added:
        LOG.info("Config reloaded: no %s changed", noun)
        return
    for name in changed:
        LOG.info("[%s] %s", name, "stopping (removed)" if name not in configs else "restarting (changed)")
    stop([chains.pop(name) for name in changed])
    for name in [n for n in changed if n in configs] + added:
        try:
            chains[name] = start(configs[name])
        except ConfigError as err:
            LOG.error("[%s] cannot start: %s", name, err)
    LOG.info("Config reloaded: %d %s(s) running", len(chains), noun)


def own_ip() -> str:
    """The address other hosts reach us on (the source address of the default route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: connect() on UDP only picks a route
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"

