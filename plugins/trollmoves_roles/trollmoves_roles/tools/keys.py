"""``trollmoves keys DIR NAME``: create a ZeroMQ CURVE key pair for the authenticated bus.

Writes ``DIR/NAME.key`` (the public key, 0644: copy it to the peers that must admit you, e.g. a
server's ``clients_public_keys_directory``) and ``DIR/NAME.key_secret`` (the secret key, 0600,
never readable by others: keep it on this host). The files are zmq certificates, the same
format posttroll's ``secure_zmq`` backend reads.

Exit status: 0 created, 2 bad usage (a file exists and ``--force`` was not given, bad name).
"""

from __future__ import annotations

import argparse
import sys
from typing import ClassVar

from trollmoves_core.command import Command
from trollmoves_core.plugins import PluginHost


class KeysTool(Command):
    """``trollmoves keys DIR NAME``: a one-shot command."""

    NAME: ClassVar[str] = "keys"
    HELP: ClassVar[str] = "create a CURVE key pair (NAME.key public, NAME.key_secret 0600) for the secure bus"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.description = cls.HELP + ". See docs/security.md."
        parser.add_argument("directory", metavar="DIR", help="where to write the key files (created if missing)")
        parser.add_argument("name", metavar="NAME", help="base name of the key files, e.g. the host name")
        parser.add_argument("--force", action="store_true", help="replace existing key files of that name")

    @classmethod
    def run(cls, args: argparse.Namespace, host: PluginHost) -> int:
        from trollmoves_roles.bus.security import SecurityError, create_keypair

        try:
            public, secret = create_keypair(args.directory, args.name, force=args.force)
        except (SecurityError, OSError) as err:
            print(f"trollmoves keys: {err}", file=sys.stderr)  # noqa: T201 - the command's one error line
            return 2
        print(f"public key: {public}\nsecret key: {secret} (mode 0600, keep it private)")  # noqa: T201
        return 0
