"""``trollmoves server CONFIG``: a drop-in replacement for upstream ``move_it_server.py``."""

from __future__ import annotations

import argparse
import logging
from typing import ClassVar

from trollmoves_core.plugins import PluginHost
from trollmoves_roles.runtime.role import ConfiguredRole

LOG = logging.getLogger(__name__)


class ServerRole(ConfiguredRole):
    """Watch directories, announce new files, push them to clients on request."""

    NAME: ClassVar[str] = "server"
    CONFIG_MODULE: ClassVar[str] = "trollmoves_roles.server.config"
    HELP: ClassVar[str] = "announce new files and push them on request (move_it_server.py)"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        from trollmoves_roles.observe.metrics import add_metrics_arguments
        from trollmoves_roles.runtime.process import add_publisher_arguments
        from trollmoves_roles.state.history import add_history_arguments
        from trollmoves_roles.transfers.service import DEFAULT_WORKERS

        parser.add_argument("config_file", help="server INI file (upstream move_it_server.py format)")
        add_publisher_arguments(parser)
        parser.add_argument("--disable-backlog", action="store_true",
                            help="do not announce files already present at start or reload")
        parser.add_argument("--announce-delay", type=float, default=1.0, metavar="SECONDS",
                            help="at start, hold announcements (backlog included) this long, so clients "
                                 "connected before a restart have reconnected (default: 1; 0: none)")
        parser.add_argument("-w", "--watchdog", action="store_true",
                            help="poll the directories instead of using file system events (for NFS, CIFS)")
        parser.add_argument("--chain-check-interval", type=float, default=30.0, metavar="SECONDS",
                            help="how often to check each chain's watcher is alive (default: 30)")
        parser.add_argument("--max-notifier-restarts", type=int, default=10, metavar="N",
                            help="exit after N failed watcher restarts in a row; 0 = never (default: 10)")
        parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, metavar="N",
                            help=f"pushes run at the same time (default: {DEFAULT_WORKERS})")
        parser.add_argument("--drain-timeout", type=float, default=30.0, metavar="SECONDS",
                            help="at stop or reload, how long to let running pushes finish (default: 30)")
        parser.add_argument("--state-directory", metavar="DIR",
                            help="keep the record of announced files in a journal in DIR, so that after a "
                                 "restart (even kill -9) files announced before are still served (default: "
                                 "in memory only)")
        add_history_arguments(parser)
        add_metrics_arguments(parser)

    @classmethod
    def run(cls, args: argparse.Namespace, host: PluginHost) -> int:
        from trollmoves_core.exceptions import ConfigError
        from trollmoves_roles.runtime.process import naming_config
        from trollmoves_roles.runtime.signals import install_signal_handlers
        from trollmoves_roles.server.config import NO_CHAIN
        from trollmoves_roles.server.service import Server, ServerOptions
        from trollmoves_roles.state.history import configure_from

        if args.workers < 1:
            raise ConfigError("--workers must be at least 1")
        if args.chain_check_interval <= 0:
            raise ConfigError("--chain-check-interval must be positive")
        if args.announce_delay < 0:
            raise ConfigError("--announce-delay must not be negative")
        configure_from(args)
        options = ServerOptions(port=args.port, bind=args.bind, backlog=not args.disable_backlog,
                                announce_delay=args.announce_delay,
                                watcher="polling" if args.watchdog else "watchdog",
                                chain_check_interval=args.chain_check_interval,
                                max_notifier_restarts=args.max_notifier_restarts, workers=args.workers,
                                drain_timeout=args.drain_timeout, state_directory=args.state_directory,
                                metrics_port=args.metrics_port, metrics_bind=args.metrics_bind, bus=args.bus)
        with naming_config(args.config_file):
            server = Server(args.config_file, options, host=host)
            restore = install_signal_handlers(server.request_stop, server.request_reload)
            try:
                if not server.chains:
                    raise ConfigError(NO_CHAIN, file=args.config_file)
                server.start()
                LOG.info("Server running: %d chain(s), publishing on port %d", len(server.chains),
                         server.publisher.port)
                return server.serve()
            finally:
                server.close()
                restore()
