"""The ``trollmoves`` launcher: roles, one-shot transfers and plugin listing.

Exit status: 0 success, 1 a transfer failed, 2 bad usage or configuration (one line on
stderr naming what is wrong).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from trollmoves_core import __version__, check
from trollmoves_core.config import parse_key_values, read_yaml
from trollmoves_core.exceptions import ConfigError, PluginConflictError, TransferError, UnknownPluginError
from trollmoves_core.logs import add_logging_arguments, setup_logging
from trollmoves_core.memory import IdleTrimmer
from trollmoves_core.plugins import KNOWN_PROVIDERS, PluginHost, default_host
from trollmoves_core.progress import ProgressBar
from trollmoves_core.uri import redact

LOG = logging.getLogger(__name__)

BUILTIN_COMMANDS = ("plugins", "move", "get", "check")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trollmoves`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(argv)
    except (ConfigError, UnknownPluginError, PluginConflictError) as err:
        print(f"trollmoves: error: {err}", file=sys.stderr)  # noqa: T201 - the CLI's one line
        return 2
    except KeyboardInterrupt:
        return 130


def _main(argv: list[str]) -> int:
    host = default_host()
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in KNOWN_PROVIDERS["role"] and command not in host.roles.classes:
        host.roles.get(command)  # raises with the install hint
    parser = build_parser(host)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    setup_logging(args)
    if not getattr(args, "role", False):
        return args.handler(args)
    trimmer = IdleTrimmer().start()
    try:
        return args.handler(args)
    finally:
        trimmer.stop()


def build_parser(host: PluginHost) -> argparse.ArgumentParser:
    """The argument parser, with one subcommand per registered role."""
    parser = argparse.ArgumentParser(prog="trollmoves", formatter_class=argparse.RawTextHelpFormatter,
                                     description="Move files between hosts, announced on the posttroll bus.")
    parser.add_argument("--version", action="version", version=version_text(host))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    plugins = sub.add_parser("plugins", help="list installed plugins and what they provide")
    plugins.add_argument("--json", action="store_true", help="print JSON instead of a table")
    plugins.set_defaults(handler=lambda args: cmd_plugins(host, args))

    for name, verb in (("move", "copy SRC (a local file) to DEST, any scheme"),
                       ("get", "fetch SRC (any scheme) to DEST, a local path")):
        cmd = sub.add_parser(name, help=verb, description=verb + ". A DEST ending in '/' keeps the source name.")
        cmd.add_argument("source", metavar="SRC")
        cmd.add_argument("destination", metavar="DEST")
        cmd.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", dest="options",
                         help="connection parameter for the mover (repeatable)")
        cmd.add_argument("--connection-params", metavar="YAML", help="connection parameters from a YAML mapping")
        cmd.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        cmd.set_defaults(handler=lambda args, host=host: cmd_transfer(host, args))

    checker = sub.add_parser("check", help=check.HELP, description=check.DESCRIPTION)
    check.add_arguments(checker)
    checker.set_defaults(handler=lambda args: check.run(args, host))

    for role_name in sorted(host.roles.classes):
        if role_name in host.roles.conflicts:
            continue
        role = host.roles.classes[role_name]
        cmd = sub.add_parser(role_name, help=role.HELP, description=role.HELP)
        role.add_arguments(cmd)
        cmd.set_defaults(handler=role.run, role=True)

    for cmd in sub.choices.values():
        add_logging_arguments(cmd)
    return parser


def version_text(host: PluginHost) -> str:
    lines = [f"trollmoves-core {__version__}"]
    for plugin in host.plugins:
        if plugin.distribution != "trollmoves-core":
            state = f" (failed: {plugin.error})" if plugin.error else ""
            lines.append(f"  {plugin.distribution} {plugin.version}{state}")
    return "\n".join(lines)


def cmd_plugins(host: PluginHost, args: argparse.Namespace) -> int:
    rows = [{"name": p.distribution, "version": p.version, "entry_point": p.name, "module": p.module,
             "hooks": p.hooks, "movers": p.movers, "watchers": p.watchers, "roles": p.roles,
             "error": p.error} for p in host.plugins]
    if args.json:
        print(json.dumps(rows, indent=2))  # noqa: T201
        return 0
    header = ("distribution", "version", "movers", "watchers", "roles")
    table = [header] + [(r["name"], r["version"], ", ".join(r["movers"]), ", ".join(r["watchers"]),
                         ", ".join(r["roles"]) if not r["error"] else f"FAILED: {r['error']}") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])  # noqa: T201
    for registry in (host.movers, host.watchers, host.roles):
        for name, providers in registry.conflicts.items():
            print(f"conflict: {registry.kind} {name!r} claimed by {', '.join(providers)}")  # noqa: T201
    return 0


def cmd_transfer(host: PluginHost, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {}
    if args.connection_params:
        loaded = read_yaml(args.connection_params) or {}
        if not isinstance(loaded, dict):
            raise ConfigError("expected a mapping of connection parameters", file=args.connection_params)
        params.update(loaded)
    params.update(parse_key_values(args.options))
    remote = args.destination if args.command == "move" else args.source
    mover = host.mover(remote, params)
    bar = None if args.quiet or not sys.stderr.isatty() else ProgressBar(args.source, sys.stderr)
    try:
        with mover:
            if args.command == "move":
                result = mover.put(args.source, args.destination, progress=bar and bar.advance)
            else:
                result = mover.get(args.source, args.destination, progress=bar and bar.advance)
    except TransferError as err:
        if bar:
            bar.finish()
        print(f"trollmoves: {err}", file=sys.stderr)  # noqa: T201
        return 1
    if bar:
        bar.finish()
    LOG.info("%s -> %s", redact(args.source), result)  # a get's source is the remote URL
    return 0
