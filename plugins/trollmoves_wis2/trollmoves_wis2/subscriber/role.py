"""``trollmoves wis2-subscriber CONFIG``: WIS2 notifications in, files and posttroll ``file`` messages out."""

from __future__ import annotations

import argparse
import logging
import threading
from typing import ClassVar

from trollmoves_roles.runtime.role import ConfiguredRole

from trollmoves_core.exceptions import ConfigError
from trollmoves_core.plugins import PluginHost

LOG = logging.getLogger(__name__)


class Wis2SubscriberRole(ConfiguredRole):
    """Subscribe to WIS2 topics on a broker, download and verify the data announced, announce each
    file on the posttroll bus (:mod:`trollmoves_wis2.subscriber.engine`).

    SIGTERM/SIGINT stop it (running downloads finish); a changed configuration needs a restart.
    """

    NAME = "wis2-subscriber"
    CONFIG_MODULE: ClassVar[str] = "trollmoves_wis2.subscriber.config"
    HELP = "subscribe to WIS2 notifications, download and verify the data, announce the files on the bus"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        from trollmoves_roles.observe.metrics import add_metrics_arguments
        from trollmoves_roles.runtime.process import add_bus_argument
        from trollmoves_roles.state.history import add_history_arguments

        parser.add_argument("config_file", metavar="CONFIG", help="WIS2 subscriber YAML configuration")
        parser.add_argument("-n", "--nameservers", nargs="*", default=None, metavar="NS",
                            help="register the publisher with these nameservers (default: the config's)")
        parser.add_argument("-p", "--publish-port", type=int, default=None, metavar="PORT",
                            help="publish on this port (default: the config's publish_port, else random)")
        parser.add_argument("--publish-bind", default="*", metavar="ADDR",
                            help="address the publisher binds to (default: all interfaces)")
        parser.add_argument("--workers", type=int, default=None, metavar="N",
                            help="downloads running at once (default: the config's parallel_downloads, else 4)")
        parser.add_argument("--state-directory", metavar="DIR", default=None,
                            help=f"remember the delivered notifications in DIR/{cls.NAME}-<config name>.sqlite, "
                                 "so that a repeat is skipped after a restart too (default: until the restart)")
        add_history_arguments(parser)
        add_metrics_arguments(parser)
        add_bus_argument(parser)

    @classmethod
    def run(cls, args: argparse.Namespace, host: PluginHost) -> int:
        from trollmoves_roles.observe.metrics import MetricsEndpoint, RoleMetrics
        from trollmoves_roles.runtime.process import naming_config, open_publisher
        from trollmoves_roles.runtime.signals import install_signal_handlers
        from trollmoves_roles.runtime.transports import transport_for
        from trollmoves_roles.state import history

        from trollmoves_wis2.subscriber.config import load_config
        from trollmoves_wis2.subscriber.engine import Wis2Subscriber
        from trollmoves_wis2.subscriber.seen import open_seen

        history.configure_from(args)
        config = load_config(args.config_file)
        if args.workers is not None and args.workers < 1:
            raise ConfigError("--workers must be at least 1", file="command line")
        seen, journal_file = open_seen(args.state_directory, args.config_file, cls.NAME, config.remember)
        kept = history.open_history(journal_file, cls.NAME, args.config_file) if journal_file else None
        metrics = RoleMetrics(cls.NAME, chains=False)
        endpoint = MetricsEndpoint(metrics, args.config_file, args.metrics_port, args.metrics_bind)
        port = config.publish_port if args.publish_port is None else args.publish_port
        registration = config.nameservers if args.nameservers is None else args.nameservers
        with naming_config(args.config_file):
            publisher = open_publisher(transport_for(host, args.bus), args.publish_bind, port, cls.NAME, registration)
        LOG.info("Announcing the WIS2 files on port %d, topic %s", publisher.port, config.publish_topic)
        subscriber = Wis2Subscriber(config, host=host, publisher=publisher, seen=seen, workers=args.workers,
                                    metrics=metrics)
        halt = threading.Event()
        restore = install_signal_handlers(halt.set, subscriber.request_reload)
        endpoint.start()
        try:
            with naming_config(args.config_file):
                subscriber.serve(halt)
        finally:
            endpoint.stop()
            publisher.stop()
            seen.close()
            history.close_history(kept)
            restore()
        return 0
