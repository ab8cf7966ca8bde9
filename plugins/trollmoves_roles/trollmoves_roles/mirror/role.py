"""``trollmoves mirror CONFIG``: the working counterpart of upstream ``move_it_mirror.py``."""

from __future__ import annotations

import argparse
import logging
from typing import ClassVar

from trollmoves_core.plugins import PluginHost
from trollmoves_roles.runtime.role import ConfiguredRole

LOG = logging.getLogger(__name__)


class MirrorRole(ConfiguredRole):
    """Re-announce internal servers' files and serve them to external clients."""

    NAME: ClassVar[str] = "mirror"
    CONFIG_MODULE: ClassVar[str] = "trollmoves_roles.mirror.config"
    HELP: ClassVar[str] = "relay internal servers' files to external clients (move_it_mirror.py)"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        from trollmoves_roles.observe.metrics import add_metrics_arguments
        from trollmoves_roles.runtime.process import add_publisher_arguments

        parser.add_argument("config_file", help="mirror INI file (upstream move_it_mirror.py format)")
        add_publisher_arguments(parser)
        add_metrics_arguments(parser)

    @classmethod
    def run(cls, args: argparse.Namespace, host: PluginHost) -> int:
        from trollmoves_roles.mirror.service import Mirror, MirrorOptions
        from trollmoves_roles.runtime.process import naming_config
        from trollmoves_roles.runtime.signals import install_signal_handlers

        with naming_config(args.config_file):
            mirror = Mirror(args.config_file, MirrorOptions(port=args.port, bind=args.bind,
                                                            metrics_port=args.metrics_port,
                                                            metrics_bind=args.metrics_bind, bus=args.bus),
                            host=host)
            restore = install_signal_handlers(mirror.request_stop, mirror.request_reload)
            try:
                mirror.start()
                LOG.info("Mirror running: %d section(s), publishing on port %d", len(mirror.chains),
                         mirror.publisher.port)
                return mirror.serve()
            finally:
                mirror.close()
                restore()
