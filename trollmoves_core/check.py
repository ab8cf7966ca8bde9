"""``trollmoves check CONFIG [--role ROLE]``: validate a configuration without starting anything.

The role is read from the file (an INI section with ``origin`` is a server, one with
``providers`` a client, both a mirror; a YAML file with targets is a dispatcher, one with a
``bucket`` a downloader) or given with ``--role``; the role's
:meth:`~trollmoves_core.role.Role.check` then finds the problems (see
:mod:`trollmoves_core.schema` for the machinery the roles share).

Each problem is printed as ``file: [section] key: problem``. Exit status: 0 when there is no
error (warnings do not count unless ``--strict``), 2 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trollmoves_core.config import read_ini, read_yaml
from trollmoves_core.exceptions import ConfigError, PluginConflictError, UnknownPluginError
from trollmoves_core.plugins import KNOWN_PROVIDERS, PluginHost
from trollmoves_core.schema import Problem

HELP = "validate a configuration file without starting anything"
DESCRIPTION = (HELP + ". The role is guessed from the file unless --role is given. Each problem is printed as "
               "'file: [section] key: problem'. Exit 0 when no errors were found (warnings count with "
               "--strict), 2 otherwise.")

DISPATCHER_RESERVED = ("posttroll_subscriber", "target_defaults")


@dataclass
class Report:
    """The role the file was checked as, and what was found."""

    file: str
    role: str
    problems: list[Problem]
    sections: int = 0

    def errors(self, strict: bool = False) -> list[Problem]:
        return [p for p in self.problems if strict or not p.warning]


# -- detection ---------------------------------------------------------------------------

def detect_role(path: str) -> str:
    """Guess the role a config file is for; ConfigError when the file does not tell."""
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        return _detect_yaml(path, read_yaml(path))
    try:
        sections = read_ini(path)
    except ConfigError as err:
        if "section header" not in str(err):
            raise
        return _detect_yaml(path, read_yaml(path))  # not INI: maybe YAML without the suffix
    keys = {key for section in sections.values() for key in section}
    if "providers" in keys and keys & {"origin", "listen", "request_port", "client_topic"}:
        return "mirror"  # a client with a server side
    if "providers" in keys:
        return "client"
    if keys & {"origin", "listen"}:
        return "server"
    raise ConfigError("cannot tell the role (no section has origin, listen or providers); give --role", file=path)


def _detect_yaml(path: str, data: Any) -> str:
    if isinstance(data, Mapping):
        if data.keys() & {"bucket", "subscribe-topic", "download_destination"}:
            return "downloader"
        if data.keys() & set(DISPATCHER_RESERVED) or any(
                isinstance(v, Mapping) and v.keys() & {"dispatch_configs", "host", "directory"} for v in data.values()):
            return "dispatcher"
    raise ConfigError("cannot tell the role (no dispatcher targets, no downloader bucket); give --role", file=path)


# -- the command -------------------------------------------------------------------------

def check_file(path: str, host: PluginHost, role: str | None = None) -> Report:
    """Check ``path`` as ``role`` (detected when None) by asking that role."""
    if not os.path.exists(path):
        return Report(path, role or "?", [Problem(path, "no such file")])
    role = role or detect_role(path)
    if role not in host.roles.classes and role not in KNOWN_PROVIDERS["role"]:
        known = ", ".join(sorted(host.roles.classes)) or "none installed"
        raise ConfigError(f"no checks for role {role!r} (known: {known})", file=path)
    try:
        role_class = host.roles.get(role)
    except (UnknownPluginError, PluginConflictError) as err:
        return Report(path, role, [Problem(path, f"cannot check this file here: {err}")])
    try:
        findings = role_class.check(path, host)
    except ConfigError as err:
        return Report(path, role, [Problem(path, str(err).removeprefix(f"{path}: "))])
    except Exception as err:  # a bug in a role's checks is one line, not a traceback
        return Report(path, role, [Problem(path, f"the {role} role's own checks failed: {type(err).__name__}: "
                                                 f"{err}")])
    return Report(path, role, list(findings.problems), findings.sections)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", nargs="+", help="configuration file(s) to check")
    parser.add_argument("--role", metavar="ROLE", help="check as this role instead of guessing from the file")
    parser.add_argument("--strict", action="store_true", help="fail on warnings too (exit 2)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print problems only, no summary line")


def run(args: argparse.Namespace, host: PluginHost) -> int:
    """Check every file; print the problems and a summary line per file. 0 when all pass, else 2."""
    failed = False
    for path in args.config:
        try:
            report = check_file(path, host, args.role)
        except ConfigError as err:
            print(str(err))  # noqa: T201 - the command's output
            failed = True
            continue
        for problem in report.problems:
            print(problem)  # noqa: T201
        errors = report.errors(args.strict)
        failed = failed or bool(errors)
        if not args.quiet:
            warnings = len(report.problems) - len(report.errors())
            verdict = f"{len(errors)} error(s)" if errors else "OK"
            if warnings and not args.strict:
                verdict += f", {warnings} warning(s)"
            print(f"{path}: {verdict} (checked as {report.role}, {report.sections} section(s))",  # noqa: T201
                  file=sys.stdout)
    return 2 if failed else 0
