"""``trollmoves dispatcher CONFIG``: upstream ``dispatcher.py``'s command line."""

from __future__ import annotations

import argparse
import logging
import os
import threading
from typing import ClassVar

from trollmoves_core.exceptions import ConfigError
from trollmoves_core.plugins import PluginHost
from trollmoves_roles.runtime.role import ConfiguredRole

LOG = logging.getLogger(__name__)


class DispatcherRole(ConfiguredRole):
    """Push files announced on the bus to the targets of a dispatch YAML file."""

    NAME = "dispatcher"
    CONFIG_MODULE: ClassVar[str] = "trollmoves_roles.dispatcher.config"
    HELP = "push announced local files to the destinations a dispatch YAML config selects"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        from trollmoves_roles.runtime.listening import add_listening_arguments

        parser.add_argument("config_file", nargs="?", metavar="CONFIG", help="dispatch YAML configuration")
        parser.add_argument("-p", "--publish-port", type=int, nargs="?", const=0, default=None, metavar="PORT",
                            help="announce dispatched files on this port (bare -p: a random port; "
                                 "default: announce nothing)")
        parser.add_argument("-n", "--publish-nameserver", nargs="*", default=None, metavar="NS",
                            help="register the publisher with these nameservers (never multicast)")
        parser.add_argument("--subscribe-nameserver", action="append", default=None, metavar="NS",
                            help="ask this nameserver for publishers instead of the config's "
                                 "(repeatable; 'false' for none)")
        add_listening_arguments(parser, cls.NAME, workers=4, workers_help="transfers running at once (default 4)")

    @classmethod
    def run(cls, args: argparse.Namespace, host: PluginHost) -> int:
        from trollmoves_roles.bus.posttroll import check_addresses, subscribe_nameservers
        from trollmoves_roles.dispatcher.engine import Dispatcher
        from trollmoves_roles.observe.metrics import MetricsEndpoint, RoleMetrics
        from trollmoves_roles.runtime.process import naming_config, open_publisher
        from trollmoves_roles.runtime.signals import install_signal_handlers
        from trollmoves_roles.state.history import configure_from
        from trollmoves_roles.state.pending import PendingMessages

        config_file = _config_file(args)
        configure_from(args)
        if args.workers < 1:
            raise ConfigError("--workers must be at least 1", file="command line")
        check_addresses(args.subscribe_address)
        metrics = RoleMetrics(cls.NAME)
        endpoint = MetricsEndpoint(metrics, config_file, args.metrics_port, args.metrics_bind)
        dispatcher = Dispatcher(config_file, addresses=args.subscribe_address,
                                nameservers=subscribe_nameservers(args.subscribe_nameserver), workers=args.workers,
                                host=host,
                                pending=PendingMessages.open(args.state_directory, config_file, cls.NAME),
                                metrics=metrics, bus=args.bus, state_directory=args.state_directory)
        publisher = None
        if args.publish_port is not None:
            with naming_config(config_file):
                publisher = open_publisher(dispatcher.transport, args.publish_bind, args.publish_port, "dispatcher",
                                           args.publish_nameserver)
            LOG.info("Announcing dispatched files on port %d", publisher.port)
            dispatcher.publisher = publisher
        halt = threading.Event()
        restore = install_signal_handlers(halt.set, dispatcher.request_reload)
        endpoint.start()
        try:
            dispatcher.serve(halt)
        finally:
            endpoint.stop()
            if publisher is not None:
                publisher.stop()
            restore()
        return 0


def _config_file(args: argparse.Namespace) -> str:
    """The positional config, recovered from ``-n`` when that option swallowed it (upstream bug)."""
    if args.config_file:
        return args.config_file
    names = args.publish_nameserver or []
    if names and os.path.isfile(names[-1]):
        args.publish_nameserver = names[:-1]
        return names[-1]
    raise ConfigError("missing the CONFIG argument (the dispatch YAML file)", file="command line")
