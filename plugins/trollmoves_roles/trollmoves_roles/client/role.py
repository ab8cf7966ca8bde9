"""``trollmoves client CONFIG``: the drop-in replacement of upstream ``move_it_client.py``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, ClassVar

from trollmoves_core.plugins import PluginHost
from trollmoves_core.role import Role

if TYPE_CHECKING:
    from trollmoves_core.plugins import PluginHost
    from trollmoves_core.schema import Findings


class ClientRole(Role):
    """Request the files trollmoves servers announce and deliver them to ``destination``."""

    NAME: ClassVar[str] = "client"
    HELP: ClassVar[str] = "request announced files from trollmoves servers (move_it_client.py)"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        from trollmoves_roles.observe.metrics import add_metrics_arguments

        parser.add_argument("config_file", help="client INI file (upstream move_it_client.py format)")
        add_metrics_arguments(parser)

    @classmethod
    def recognises(cls, content: Any) -> int:
        from trollmoves_roles.client.config import recognises
        return recognises(content)

    @classmethod
    def check(cls, path: str, host: PluginHost) -> Findings:
        from trollmoves_roles.client.config import check_config
        return check_config(path, host)

    @classmethod
    def run(cls, args: argparse.Namespace, host: PluginHost) -> int:
        from trollmoves_roles.client.process import ClientProcess  # zmq and friends load only when run
        return ClientProcess(args.config_file, host=host, metrics_port=args.metrics_port,
                             metrics_bind=args.metrics_bind).run()
