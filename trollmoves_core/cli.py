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
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any, ClassVar

from trollmoves_core import __version__, check
from trollmoves_core.bwlimit import Limits, parse_limit
from trollmoves_core.checksum import METHODS, Digest
from trollmoves_core.command import Command
from trollmoves_core.config import parse_key_values, read_yaml
from trollmoves_core.exceptions import ConfigError, PluginConflictError, TransferError, UnknownPluginError
from trollmoves_core.logs import add_logging_arguments, setup_logging
from trollmoves_core.memory import IdleTrimmer
from trollmoves_core.plugins import DISABLE_VARIABLE, KNOWN_PROVIDERS, PluginHost, load_plugins
from trollmoves_core.progress import ProgressBar
from trollmoves_core.uri import Location, parse_uri, redact

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
    except BrokenPipeError:  # the reader of our output went away (| head): no traceback, as cat
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush must not fail too
        return 141


def _main(argv: list[str]) -> int:
    host = load_plugins()
    name = next((a for a in argv if not a.startswith("-")), None)
    for registry in (host.roles, host.commands):
        if name in KNOWN_PROVIDERS[registry.kind] and name not in registry.classes:
            registry.get(name)  # raises with the install hint
    parser = build_parser(host)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("a command is required; trollmoves --help lists them")
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
            state = f" (failed: {plugin.error})" if plugin.error else " (disabled)" if plugin.disabled else ""
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
                 "roles": p.roles, "observers": p.observers,
                 "commands": p.commands, "error": p.error, "disabled": p.disabled} for p in host.plugins]
        if args.json:
            print(json.dumps(rows, indent=2))  # noqa: T201
            return 0
        header = ("distribution", "version", "movers", "transports", "watchers", "roles", "observers", "commands")
        table = [header] + [(r["name"], r["version"], ", ".join(r["movers"]), ", ".join(r["transports"]),
                             ", ".join(r["watchers"]),
                             ", ".join(r["roles"]), ", ".join(r["observers"]),
                             f"FAILED: {r['error']}" if r["error"] else
                             f"DISABLED ({DISABLE_VARIABLE})" if r["disabled"] else ", ".join(r["commands"]))
                            for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
        for row in table:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])  # noqa: T201
        shown = set()
        for registry in (host.movers, host.transports, host.watchers, host.roles, host.observers, host.commands):
            for name, providers in registry.conflicts.items():
                if (name, tuple(providers)) not in shown:  # a role and a command of one name: one line
                    shown.add((name, tuple(providers)))
                    print(f"conflict: {registry.kind} {name!r} claimed by {', '.join(providers)}")  # noqa: T201
        return 0


class _TransferCommand(Command):
    """``move``/``get``: one file, any scheme, with a progress bar on a terminal.

    Local sides follow cp: a plain path is relative to the working directory, an existing
    directory (or a path ending in ``/``) receives the file under its own name.
    """

    SRC_HELP: ClassVar[str]
    DEST_HELP: ClassVar[str]

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("source", metavar="SRC", help=cls.SRC_HELP)
        parser.add_argument("destination", metavar="DEST", help=cls.DEST_HELP)
        parser.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", dest="options",
                            help="connection parameter for the mover (repeatable)")
        parser.add_argument("--connection-params", metavar="YAML", help="connection parameters from a YAML mapping")
        parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        parser.add_argument("--size", type=int, metavar="BYTES", help="verify the copy has this size")
        parser.add_argument("--checksum", metavar="METHOD:BASE64",
                            help="verify the copy's checksum, as announced (sha256:... or sha512:...; needs --size)")
        parser.add_argument("--bwlimit", metavar="RATE",
                            help="bandwidth limit: 20M, 512k, or a timetable such as '08:00,10M 18:00,off'")

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
        try:
            limit = parse_limit(args.bwlimit)
        except ValueError as err:
            raise ConfigError(f"--bwlimit: {err}") from None
        put = cls.NAME == "move"
        if put:
            local, remote = local_path(args.source, "SRC"), transfer_uri(args.destination, "DEST")
        else:
            local, remote = local_path(args.destination, "DEST"), transfer_uri(args.source, "SRC")
        mover = host.mover(remote, params)
        bar = None
        if not args.quiet and sys.stderr.isatty():
            bar = ProgressBar(local if put else remote, sys.stderr, total=None if put else mover.size(remote))
        progress = Limits().throttle([("--bwlimit", limit)], bar and bar.advance)
        try:
            with mover:
                if put:
                    result = mover.put(local, remote, progress=progress, expected=expected)
                else:
                    result = mover.get(remote, local, progress=progress, expected=expected)
        except TransferError as err:
            if bar:
                bar.finish(None)
            print(f"trollmoves: {err}", file=sys.stderr)  # noqa: T201
            return 1
        if bar:
            bar.finish(result)
        # the bar already said it on a terminal; scripts get the log line
        LOG.log(logging.DEBUG if bar else logging.INFO, "%s -> %s", local if put else redact(remote), result)
        return 0


def local_path(text: str, what: str) -> str:
    """The absolute local path ``text`` (a plain path or a ``file://`` URI) names; a directory ends in ``/``."""
    location = _parse(text, what)
    if location.scheme != "file":
        raise ConfigError(f"{what} {redact(text)!r} must be a local path (a plain path or file:///path)")
    return _absolute(text, location)


def transfer_uri(text: str, what: str) -> str:
    """``text`` as the movers take it: a remote URI as it is, a local path as an absolute ``file://`` URI."""
    location = _parse(text, what)
    return text if location.scheme != "file" else "file://" + _absolute(text, location)


def _parse(text: str, what: str) -> Location:
    try:
        return parse_uri(text)
    except ValueError as err:
        raise ConfigError(f"{what}: {err}") from None


def _absolute(text: str, location: Location) -> str:
    path = text
    if text.lower().startswith("file:"):
        if location.host and location.host not in ("localhost", *_own_names()):
            raise ConfigError(
                f"{redact(text)!r} reads as host {location.host!r} and path {location.path!r}: a file:// URI takes an "
                f"absolute path (file:///path); write a plain path for one relative to the working directory")
        path = location.path
    absolute = os.path.abspath(path)
    return absolute.rstrip("/") + "/" if path.endswith("/") or os.path.isdir(absolute) else absolute


def _own_names() -> set[str]:
    name = socket.gethostname()
    return {name, name.split(".", 1)[0], socket.getfqdn()}


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
    HELP: ClassVar[str] = "copy a local file SRC to DEST, any scheme (the source stays)"
    DESCRIPTION: ClassVar[str] = (
        "Copy the local file SRC to DEST, any scheme. As upstream trollmoves means it, 'move' copies: the "
        "source is kept (unlike rclone's move). A local DEST is a hard link where possible, as upstream's "
        "file mover makes it: -o mode=copy for an independent copy, -o mode=move to rename the source.")
    SRC_HELP: ClassVar[str] = "the local file to send: a path (relative to the working directory) or file:///path"
    DEST_HELP: ClassVar[str] = (
        "where it goes: a URI (sftp://user@host/dir/, s3://bucket/key...) or a local path; an existing "
        "directory or a DEST ending in '/' keeps the source name, otherwise DEST is the new name")


class GetCommand(_TransferCommand):
    NAME: ClassVar[str] = "get"
    HELP: ClassVar[str] = "fetch SRC (any scheme) to DEST, a local path (the source stays)"
    DESCRIPTION: ClassVar[str] = "Fetch SRC (any scheme) to the local DEST; the source is kept."
    SRC_HELP: ClassVar[str] = "the file to fetch: a URI (ftp://host/path, s3://bucket/key...) or a local path"
    DEST_HELP: ClassVar[str] = (
        "the local path to write: an existing directory or a DEST ending in '/' keeps the source name, "
        "otherwise DEST is the new name")


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
