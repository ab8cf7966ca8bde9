"""``trollmoves client CONFIG``: the drop-in replacement of upstream ``move_it_client.py``."""

from __future__ import annotations

import argparse
from typing import ClassVar

from trollmoves_core.plugins import PluginHost
from trollmoves_roles.runtime.role import ConfiguredRole


class ClientRole(ConfiguredRole):
    """Request the files trollmoves servers announce and deliver them to ``destination``."""

    NAME: ClassVar[str] = "client"
    CONFIG_MODULE: ClassVar[str] = "trollmoves_roles.client.config"
    HELP: ClassVar[str] = "request announced files from trollmoves servers (move_it_client.py)"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        from trollmoves_roles.observe.metrics import add_metrics_arguments
        from trollmoves_roles.runtime.process import add_bus_argument
        from trollmoves_roles.state.history import add_history_arguments

        parser.add_argument("config_file", help="client INI file (upstream move_it_client.py format)")
        add_history_arguments(parser)
        add_metrics_arguments(parser)
        add_bus_argument(parser)

    @classmethod
    def run(cls, args: argparse.Namespace, host: PluginHost) -> int:
        from trollmoves_roles.client.process import ClientProcess  # zmq and friends load only when run
        from trollmoves_roles.state.history import configure_from

        configure_from(args)
        return ClientProcess(args.config_file, host=host, metrics_port=args.metrics_port,
                             metrics_bind=args.metrics_bind, bus=args.bus).run()
