"""``trollmoves client CONFIG``: the drop-in replacement of upstream ``move_it_client.py``."""

from __future__ import annotations

import argparse
from typing import ClassVar

from trollmoves_core.plugins import PluginHost
from trollmoves_core.role import Role


class ClientRole(Role):
    """Request the files trollmoves servers announce and deliver them to ``destination``."""

    NAME: ClassVar[str] = "client"
    HELP: ClassVar[str] = "request announced files from trollmoves servers (move_it_client.py)"
    EXTRA_CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset({
        "state_directory", "give_up_after", "retry_delay", "max_retry_delay", "reconcile_interval",
        "client_secret_key_file", "server_public_key_file", "publisher_public_key_file"})

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        from trollmoves_roles.observe.metrics import add_metrics_arguments

        parser.add_argument("config_file", help="client INI file (upstream move_it_client.py format)")
        add_metrics_arguments(parser)

    @classmethod
    def check_config(cls, path: str) -> list[str]:
        """The client's own reading of ``path`` (key files included): its first error, or nothing."""
        from trollmoves_roles.client.config import load_client_config
        load_client_config(path)  # a ConfigError is reported by `trollmoves check` as one line
        return []

    @classmethod
    def run(cls, args: argparse.Namespace, host: PluginHost) -> int:
        from trollmoves_roles.client.process import ClientProcess  # zmq and friends load only when run
        return ClientProcess(args.config_file, metrics_port=args.metrics_port, metrics_bind=args.metrics_bind).run()
