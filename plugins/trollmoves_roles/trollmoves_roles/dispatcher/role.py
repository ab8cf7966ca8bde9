"""``trollmoves dispatcher CONFIG``: upstream ``dispatcher.py``'s command line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import TYPE_CHECKING

from trollmoves_core.exceptions import ConfigError
from trollmoves_core.role import Role

if TYPE_CHECKING:
    from trollmoves_roles.bus import BusPublisher
    from trollmoves_roles.dispatcher.pending import PendingMessages

LOG = logging.getLogger(__name__)


class DispatcherRole(Role):
    """Push files announced on the bus to the targets of a dispatch YAML file."""

    NAME = "dispatcher"
    HELP = "push announced local files to the destinations a dispatch YAML config selects"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("config_file", nargs="?", metavar="CONFIG", help="dispatch YAML configuration")
        parser.add_argument("-p", "--publish-port", type=int, nargs="?", const=0, default=None, metavar="PORT",
                            help="announce dispatched files on this port (bare -p: a random port; "
                                 "default: announce nothing)")
        parser.add_argument("-n", "--publish-nameserver", nargs="*", default=None, metavar="NS",
                            help="register the publisher with these nameservers (never multicast)")
        parser.add_argument("--publish-bind", default="*", metavar="ADDR",
                            help="address the publisher binds to (default: all interfaces)")
        parser.add_argument("-s", "--subscribe-address", action="append", default=[], metavar="ADDR",
                            help="also subscribe to this publisher (host:port or tcp://host:port; repeatable)")
        parser.add_argument("--subscribe-nameserver", action="append", default=None, metavar="NS",
                            help="ask this nameserver for publishers instead of the config's "
                                 "(repeatable; 'false' for none)")
        parser.add_argument("--workers", type=int, default=4, metavar="N",
                            help="transfers running at once (default 4)")
        parser.add_argument("--state-directory", metavar="DIR", default=None,
                            help="journal unfinished messages in DIR/dispatcher-<config name>.sqlite and resume "
                                 "them after a restart (default: no journal)")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from trollmoves_roles.dispatcher.engine import Dispatcher

        config_file = _config_file(args)
        if args.workers < 1:
            raise ConfigError("--workers must be at least 1", file="command line")
        check_addresses(args.subscribe_address)
        nameservers = args.subscribe_nameserver
        if nameservers is not None:
            nameservers = [n for n in nameservers if n.lower() not in ("false", "none", "")]
        dispatcher = Dispatcher(config_file, addresses=args.subscribe_address, nameservers=nameservers,
                                workers=args.workers,
                                pending=open_pending(args.state_directory, config_file, "dispatcher"))
        publisher = None
        if args.publish_port is not None:
            publisher = start_publisher(args.publish_port, args.publish_bind, "dispatcher", args.publish_nameserver)
            LOG.info("Announcing dispatched files on port %d", publisher.port)
            dispatcher.publisher = publisher
        halt = threading.Event()

        def stop(signum: int, _frame: object) -> None:
            LOG.info("Stopping on %s", signal.Signals(signum).name)
            halt.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: dispatcher.request_reload())
        try:
            dispatcher.serve(halt)
        finally:
            if publisher is not None:
                publisher.stop()
        return 0


def open_pending(state_directory: str | None, config_file: str, role: str) -> PendingMessages:
    """The journal of unfinished messages, or a ConfigError naming ``--state-directory``."""
    import sqlite3

    from trollmoves_roles.dispatcher.pending import PendingMessages

    try:
        return PendingMessages.open(state_directory, config_file, role)
    except (OSError, ValueError, sqlite3.Error) as err:
        raise ConfigError(f"--state-directory: cannot keep a journal in {state_directory}: {err}",
                          file="command line") from None


def check_addresses(addresses: list[str]) -> None:
    """Reject a malformed ``--subscribe-address`` as a usage error."""
    from trollmoves_roles.dispatcher.config import address_problem

    for address in addresses:
        problem = address_problem(address)
        if problem:
            raise ConfigError(f"--subscribe-address: {problem}", file="command line")


def start_publisher(port: int, bind: str, name: str, nameservers: list[str] | tuple[str, ...] | None) -> BusPublisher:
    """A started publisher, or a ConfigError saying why the address cannot be used."""
    from trollmoves_roles.bus import BusPublisher

    try:
        return BusPublisher(port, bind=bind, name=name, nameservers=list(nameservers or []) or None)
    except Exception as err:  # zmq reports a taken port or a bad address
        raise ConfigError(f"cannot publish on {bind}:{port}: {err}", file="command line") from None


def _config_file(args: argparse.Namespace) -> str:
    """The positional config, recovered from ``-n`` when that option swallowed it (upstream bug)."""
    if args.config_file:
        return args.config_file
    names = args.publish_nameserver or []
    if names and os.path.isfile(names[-1]):
        args.publish_nameserver = names[:-1]
        return names[-1]
    raise ConfigError("missing the CONFIG argument (the dispatch YAML file)", file="command line")
