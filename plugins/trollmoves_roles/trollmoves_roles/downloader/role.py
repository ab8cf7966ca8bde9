"""``trollmoves downloader CONFIG``: upstream ``s3downloader.py``, for any scheme with a mover."""

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


class DownloaderRole(ConfiguredRole):
    """Fetch files or objects announced on the bus (s3://, sftp://, ftp://, file://...) and announce the copies.

    SIGTERM/SIGINT stop it (running downloads finish); SIGHUP, or a change of the config file,
    reloads the configuration.
    """

    NAME = "downloader"
    CONFIG_MODULE: ClassVar[str] = "trollmoves_roles.downloader.config"
    HELP = "download announced files or objects (s3, sftp, ftp, file...) and announce the local copies"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        from trollmoves_roles.runtime.listening import add_listening_arguments

        parser.add_argument("config_file", nargs="?", metavar="CONFIG", help="downloader YAML configuration")
        parser.add_argument("--config-file", dest="config_option", metavar="CONFIG",
                            help="the same, spelled as upstream's s3downloader (its -c is --log-config here)")
        parser.add_argument("-r", "--subscribe-nameserver", action="append", default=None, metavar="NS",
                            help="ask this nameserver for publishers (default: the config's "
                                 "subscribe_nameserver, else localhost; 'false' for none; repeatable)")
        parser.add_argument("-n", "--nameservers", nargs="*", default=None, metavar="NS",
                            help="register the publisher with these nameservers (never multicast)")
        parser.add_argument("-p", "--publish-port", type=int, default=None, metavar="PORT",
                            help="publish on this port (default: the config's publish_port, else random)")
        add_listening_arguments(parser, cls.NAME, workers=None,
                                workers_help="downloads running at once (default: the config's parallel_downloads, "
                                             "else 4)")

    @classmethod
    def run(cls, args: argparse.Namespace, host: PluginHost) -> int:
        from trollmoves_roles.bus.posttroll import check_addresses, subscribe_nameservers
        from trollmoves_roles.downloader.config import load_config
        from trollmoves_roles.downloader.engine import Downloader
        from trollmoves_roles.observe.metrics import MetricsEndpoint, RoleMetrics
        from trollmoves_roles.runtime.process import naming_config, open_publisher
        from trollmoves_roles.runtime.signals import install_signal_handlers
        from trollmoves_roles.runtime.transports import transport_for
        from trollmoves_roles.state.history import configure_from
        from trollmoves_roles.state.pending import PendingMessages

        config_file = _config_file(args)
        configure_from(args)
        config = load_config(config_file)
        if args.workers is not None and args.workers < 1:
            raise ConfigError("--workers must be at least 1", file="command line")
        check_addresses(args.subscribe_address)
        metrics = RoleMetrics(cls.NAME, chains=False)
        endpoint = MetricsEndpoint(metrics, config_file, args.metrics_port, args.metrics_bind)
        pending = PendingMessages.open(args.state_directory, config_file, cls.NAME)
        publish_port = config.publish_port if args.publish_port is None else args.publish_port
        registration = config.nameservers if args.nameservers is None else args.nameservers
        with naming_config(config_file):
            publisher = open_publisher(transport_for(host, args.bus), args.publish_bind, publish_port, "s3downloader",
                                       registration)
        LOG.info("Announcing downloaded files on port %d", publisher.port)
        downloader = Downloader(config, publisher=publisher, addresses=args.subscribe_address,
                                nameservers=subscribe_nameservers(args.subscribe_nameserver), workers=args.workers,
                                host=host,
                                pending=pending, watch=True, metrics=metrics, bus=args.bus)
        halt = threading.Event()
        restore = install_signal_handlers(halt.set, downloader.request_reload)
        endpoint.start()
        try:
            downloader.serve(halt)
        finally:
            endpoint.stop()
            publisher.stop()
            restore()
        return 0


def _config_file(args: argparse.Namespace) -> str:
    """The config, from the positional, ``--config-file``, or recovered from a greedy ``-n``."""
    if args.config_file and args.config_option and args.config_file != args.config_option:
        raise ConfigError("give the configuration once: CONFIG or --config-file", file="command line")
    if args.config_file or args.config_option:
        return args.config_file or args.config_option
    names = args.nameservers or []
    if names and os.path.isfile(names[-1]):
        args.nameservers = names[:-1]
        return names[-1]
    raise ConfigError("missing the CONFIG argument (the downloader YAML file)", file="command line")
