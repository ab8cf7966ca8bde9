"""``trollmoves trace NAME|UID|PATH [CONFIG...]``: what the roles on this host did with one file.

Reads the ``events`` table (:mod:`trollmoves_roles.state.history`) of the journals of this host:
those of the CONFIG files given (the journals their processes listed, and every journal in the
``state_directory`` a client config names), else every journal listed in the history index,
plus those in each ``--state-directory``. Prints one line per event, oldest first, as a table
(with rich on a terminal when it is installed) or ``--json``.

Exit status: 0 events shown, 1 none found, 2 bad usage or no journal to read.
"""

from __future__ import annotations

import argparse
import configparser
import datetime as dt
import json
import os
import re
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from trollmoves_core.command import Command
from trollmoves_core.plugins import PluginHost
from trollmoves_roles.state import history
from trollmoves_roles.tools.columns import aligned

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
HEADER = ("TIME", "ROLE", "CHAIN", "EVENT", "FILE", "PEER", "DESTINATION", "TOOK", "SIZE", "DETAIL")


def parse_since(text: str, now: float | None = None) -> float:
    """Unix time of ``--since``: a duration ago (``90s``, ``15m``, ``2h``, ``7d``, ``1w``; bare
    numbers are seconds) or an ISO date/time (local time unless it has an offset). ValueError if neither."""
    now = time.time() if now is None else now
    match = _DURATION.match(text)
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        return dt.datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise ValueError(f"--since: expected a duration (90s, 15m, 2h, 7d) or an ISO date/time, got {text!r}") \
            from None


def find_journals(configs: Sequence[str], state_directories: Sequence[str]) -> list[Path]:
    """The journals to read, each once (see the module docstring)."""
    found: list[Path] = []
    wanted = {os.path.abspath(c) for c in configs}
    for entry in history.indexed():
        if not configs or entry.get("config") in wanted:
            found.append(Path(entry["journal"]))
    directories = list(state_directories)
    for config in configs:
        directories += _state_directories(config)
    found += history.journals_in(directories)
    unique: dict[str, Path] = {}
    for path in found:
        unique.setdefault(os.path.realpath(path), path)
    return list(unique.values())


def _state_directories(config: str) -> list[str]:
    """``state_directory`` values of an INI config (a client's); none for other files."""
    parser = configparser.RawConfigParser(interpolation=None)
    try:
        parser.read(config)
    except (configparser.Error, UnicodeDecodeError):
        return []
    return sorted({parser.get(s, "state_directory") for s in parser.sections()
                   if parser.get(s, "state_directory", fallback="").strip()})


def collect(wanted: str, journals: Sequence[Path], since: float | None = None) -> tuple[list[dict[str, Any]],
                                                                                        list[str]]:
    """Events about ``wanted`` in ``journals``, oldest first, as dicts with their ``journal``; and
    one problem line per journal that could not be read."""
    events: list[dict[str, Any]] = []
    problems = []
    for journal in journals:
        try:
            found = history.query(journal, wanted, since)
        except sqlite3.Error as err:
            problems.append(f"{journal}: cannot read: {err}")
            continue
        events += [{**event.as_dict(), "journal": str(journal)} for event in found]
    events.sort(key=lambda e: e["time"])
    return events, problems


def _when(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="milliseconds")


def _cells(event: dict[str, Any]) -> tuple[str, ...]:
    took = "" if event["seconds"] is None else f"{event['seconds']:.3f} s"
    size = "" if event["size"] is None else str(event["size"])
    where = event["path"] if event["path"] and event["path"] != event["uid"] else event["uid"]
    return (_when(event["time"]), event["role"], event["chain"] or "-", event["event"], where, event["peer"],
            event["destination"], took, size, event["detail"])


def render_plain(events: list[dict[str, Any]]) -> str:
    """The events as aligned columns (empty columns left out)."""
    rows = [HEADER, *(_cells(e) for e in events)]
    keep = [i for i in range(len(HEADER)) if any(row[i] for row in rows[1:])]
    return "\n".join(aligned([tuple(row[i] for i in keep) for row in rows]))


def _print_rich(events: list[dict[str, Any]]) -> bool:
    """Print with rich when it is installed and stdout is a terminal; whether it did."""
    if not sys.stdout.isatty():
        return False
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        return False
    table = Table(box=None, header_style="bold")
    rows = [_cells(e) for e in events]
    keep = [i for i in range(len(HEADER)) if any(row[i] for row in rows)]
    for i in keep:
        table.add_column(HEADER[i], overflow="fold")
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    Console().print(table)
    return True


class TraceTool(Command):
    """``trollmoves trace NAME|UID|PATH [CONFIG...]``: a one-shot query of the journals' history."""

    NAME: ClassVar[str] = "trace"
    HELP: ClassVar[str] = "show what the roles on this host did with one file (from their journals)"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.description = (cls.HELP + ". Reads the journals of the given CONFIG files' processes (their "
                              "--state-directory / state_directory), else every journal with history on this "
                              "host. Exit 0 shown, 1 nothing found, 2 no journal to read.")
        parser.add_argument("file", metavar="NAME|UID|PATH", help="the file: its name, uid or a path to it")
        parser.add_argument("configs", metavar="CONFIG", nargs="*", help="config files of the roles to ask")
        parser.add_argument("--state-directory", action="append", default=[], metavar="DIR",
                            help="also read the journals in DIR (repeatable)")
        parser.add_argument("--since", metavar="WHEN",
                            help="only events since WHEN: a duration ago (90s, 15m, 2h, 7d) or an ISO date/time")
        parser.add_argument("--json", action="store_true", help="print the events as JSON")

    @classmethod
    def run(cls, args: argparse.Namespace, host: PluginHost) -> int:
        try:
            since = None if args.since is None else parse_since(args.since)
        except ValueError as err:
            return _fail(str(err), 2)
        journals = find_journals(args.configs, args.state_directory)
        if not journals:
            where = ", ".join(args.configs) if args.configs else "this host"
            return _fail(f"no journal with file history found for {where} (roles keep history only with a state "
                         "directory; name one with --state-directory)", 2)
        events, problems = collect(args.file, journals, since)
        for problem in problems:
            print(f"trollmoves trace: {problem}", file=sys.stderr)  # noqa: T201 - the command's error lines
        if args.json:
            print(json.dumps({"query": args.file, "since": since, "journals": [str(j) for j in journals],  # noqa: T201
                              "events": [{**e, "when": _when(e["time"])} for e in events]}, indent=2))
            return 0 if events else 1
        if not events:
            return _fail(f"no history of {args.file!r} in {len(journals)} journal(s)"
                         + (f" since {_when(since)}" if since is not None else ""), 1)
        if not _print_rich(events):
            print(render_plain(events))  # noqa: T201 - the output
        return 0


def _fail(message: str, status: int) -> int:
    print(f"trollmoves trace: {message}", file=sys.stderr)  # noqa: T201 - the command's one error line
    return status
