"""The ``trollmoves`` launcher: one subcommand per registered role and command.

The core's own commands (``plugins``, ``move``, ``get``, ``check``) are defined here and
registered through the ``trollmoves_register_commands`` hook like any plugin's.

Exit status: 0 success, 1 a transfer failed, 2 bad usage or configuration (one line on
stderr naming what is wrong).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any, ClassVar

from trollmoves_core import __version__, check
from trollmoves_core.checksum import METHODS, Digest
from trollmoves_core.command import Command
from trollmoves_core.config import parse_key_values, read_yaml
from trollmoves_core.exceptions import ConfigError, PluginConflictError, TransferError, UnknownPluginError
from trollmoves_core.logs import add_logging_arguments, setup_logging
from trollmoves_core.memory import IdleTrimmer
from trollmoves_core.plugins import KNOWN_PROVIDERS, PluginHost, load_plugins
from trollmoves_core.progress import ProgressBar
from trollmoves_core.uri import redact

LOG = logging.getLogger(__name__)


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
    host = load_plugins()
    name = next((a for a in argv if not a.startswith("-")), None)
    for registry in (host.roles, host.commands):
        if name in KNOWN_PROVIDERS[registry.kind] and name not in registry.classes:
            registry.get(name)  # raises with the install hint
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
    """The argument parser, with one subcommand per registered command, then per role."""
    parser = argparse.ArgumentParser(prog="trollmoves", formatter_class=argparse.RawTextHelpFormatter,
                                     description="Move files between hosts, announced on the posttroll bus.")
    parser.add_argument("--version", action="version", version=version_text(host))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for registry, is_role in ((host.commands, False), (host.roles, True)):
        names = list(registry.classes) if registry is host.commands else sorted(registry.classes)
        for name in names:
            cls = registry.classes[name]
            if name in registry.conflicts:
                continue
            description = getattr(cls, "DESCRIPTION", None) or cls.HELP
            cmd = sub.add_parser(name, help=cls.HELP, description=description)
            cls.add_arguments(cmd)
            cmd.set_defaults(handler=lambda args, cls=cls: cls.run(args, host), role=is_role)
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


class PluginsCommand(Command):
    """``trollmoves plugins [--json]``: the installed plugins and what each provides."""

    NAME: ClassVar[str] = "plugins"
    HELP: ClassVar[str] = "list installed plugins and what they provide"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    @classmethod
    def run(cls, args: argparse.Namespace, host: PluginHost) -> int:
        rows = [{"name": p.distribution, "version": p.version, "entry_point": p.name, "module": p.module,
                 "hooks": p.hooks, "movers": p.movers, "transports": p.transports, "watchers": p.watchers,
                 "roles": p.roles,
                 "commands": p.commands, "error": p.error} for p in host.plugins]
        if args.json:
            print(json.dumps(rows, indent=2))  # noqa: T201
            return 0
        header = ("distribution", "version", "movers", "transports", "watchers", "roles", "commands")
        table = [header] + [(r["name"], r["version"], ", ".join(r["movers"]), ", ".join(r["transports"]),
                             ", ".join(r["watchers"]),
                             ", ".join(r["roles"]),
                             ", ".join(r["commands"]) if not r["error"] else f"FAILED: {r['error']}")
                            for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
        for row in table:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])  # noqa: T201
        shown = set()
        for registry in (host.movers, host.transports, host.watchers, host.roles, host.commands):
            for name, providers in registry.conflicts.items():
                if (name, tuple(providers)) not in shown:  # a role and a command of one name: one line
                    shown.add((name, tuple(providers)))
                    print(f"conflict: {registry.kind} {name!r} claimed by {', '.join(providers)}")  # noqa: T201
        return 0


class _TransferCommand(Command):
    """``move``/``get``: one file, any scheme, with a progress bar on a terminal."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("source", metavar="SRC")
        parser.add_argument("destination", metavar="DEST")
        parser.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", dest="options",
                            help="connection parameter for the mover (repeatable)")
        parser.add_argument("--connection-params", metavar="YAML", help="connection parameters from a YAML mapping")
        parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        parser.add_argument("--size", type=int, metavar="BYTES", help="verify the copy has this size")
        parser.add_argument("--checksum", metavar="METHOD:BASE64",
                            help="verify the copy's checksum, as announced (sha256:... or sha512:...; needs --size)")

    @classmethod
    def run(cls, args: argparse.Namespace, host: PluginHost) -> int:
        params: dict[str, Any] = {}
        if args.connection_params:
            loaded = read_yaml(args.connection_params) or {}
            if not isinstance(loaded, dict):
                raise ConfigError("expected a mapping of connection parameters", file=args.connection_params)
            params.update(loaded)
        params.update(parse_key_values(args.options))
        expected = _expected(args.size, args.checksum)
        put = cls.NAME == "move"
        mover = host.mover(args.destination if put else args.source, params)
        bar = None if args.quiet or not sys.stderr.isatty() else ProgressBar(args.source, sys.stderr)
        try:
            with mover:
                transfer = mover.put if put else mover.get
                result = transfer(args.source, args.destination, progress=bar and bar.advance, expected=expected)
        except TransferError as err:
            if bar:
                bar.finish(None)
            print(f"trollmoves: {err}", file=sys.stderr)  # noqa: T201
            return 1
        if bar:
            bar.finish(result)
        LOG.info("%s -> %s", redact(args.source), result)  # a get's source is the remote URL
        return 0


def _expected(size: int | None, checksum: str | None) -> Digest | None:
    """The ``--size``/``--checksum`` to verify against; ConfigError for a malformed one."""
    if checksum is None:
        return None if size is None else Digest(size)
    method, _, value = checksum.partition(":")
    if size is None or method not in METHODS or not value:
        raise ConfigError(f"--checksum: expected METHOD:BASE64 (method {' or '.join(METHODS)}) with --size, "
                          f"got {checksum!r}")
    return Digest(size, method, value)


class MoveCommand(_TransferCommand):
    NAME: ClassVar[str] = "move"
    HELP: ClassVar[str] = "copy SRC (a local file) to DEST, any scheme"
    DESCRIPTION: ClassVar[str] = HELP + ". A DEST ending in '/' keeps the source name."


class GetCommand(_TransferCommand):
    NAME: ClassVar[str] = "get"
    HELP: ClassVar[str] = "fetch SRC (any scheme) to DEST, a local path"
    DESCRIPTION: ClassVar[str] = HELP + ". A DEST ending in '/' keeps the source name."


class CheckCommand(Command):
    """``trollmoves check CONFIG...``; the checks themselves are in :mod:`trollmoves_core.check`."""

    NAME: ClassVar[str] = "check"
    HELP: ClassVar[str] = check.HELP
    DESCRIPTION: ClassVar[str] = check.DESCRIPTION

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        check.add_arguments(parser)

    @classmethod
    def run(cls, args: argparse.Namespace, host: PluginHost) -> int:
        return check.run(args, host)


BUILTIN_COMMANDS: list[type[Command]] = [PluginsCommand, MoveCommand, GetCommand, CheckCommand]
"""The core's commands, registered by :mod:`trollmoves_core.default_plugins`."""
