"""``trollmoves client CONFIG``: the drop-in replacement of upstream ``move_it_client.py``."""

from __future__ import annotations

import argparse

from trollmoves_core.role import Role


class ClientRole(Role):
    """Request the files trollmoves servers announce and deliver them to ``destination``."""

    NAME = "client"
    HELP = "request announced files from trollmoves servers (move_it_client.py)"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("config_file", help="client INI file (upstream move_it_client.py format)")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from trollmoves_roles.client.process import ClientProcess  # zmq and friends load only when run
        return ClientProcess(args.config_file).run()
