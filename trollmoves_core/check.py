"""``trollmoves check CONFIG [--role ROLE]``: validate a configuration without starting anything.

The role is the one whose :meth:`~trollmoves_core.role.Role.recognises` is surest of the
file, or given with ``--role`` (a logging dictConfig YAML, what ``-c`` takes, is checked as
one); that role's :meth:`~trollmoves_core.role.Role.check` then
finds the problems (see :mod:`trollmoves_core.schema` for the machinery the roles share).

Each problem is printed as ``file: [section] key: problem``. Exit status: 0 when there is no
error (warnings do not count unless ``--strict``), 2 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trollmoves_core.config import Section, read_ini, read_yaml
from trollmoves_core.exceptions import ConfigError, PluginConflictError, UnknownPluginError
from trollmoves_core.logs import is_logging_config, logging_config_problems
from trollmoves_core.plugins import KNOWN_PROVIDERS, PluginHost, default_host
from trollmoves_core.schema import Problem

HELP = "validate a configuration file without starting anything"
DESCRIPTION = (HELP + ". The role is guessed from the file unless --role is given. Each problem is printed as "
               "'file: [section] key: problem'. Exit 0 when no errors were found (warnings count with "
               "--strict), 2 otherwise.")

LOGGING_CONFIG = "logging config (-c)"
"""The kind a logging dictConfig file is checked as."""


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

def read_config(path: str) -> Any:
    """The content of a config file, as :meth:`~trollmoves_core.role.Role.recognises` gets it:
    a dict of section name → :class:`~trollmoves_core.config.Section` for an INI file, the
    loaded data for YAML (a file that is not INI is tried as YAML)."""
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        return read_yaml(path)
    try:
        return read_ini(path)
    except ConfigError as err:
        if "section header" not in str(err):
            raise
        return read_yaml(path)


def detect_role(path: str, host: PluginHost | None = None) -> str:
    """The role whose :meth:`~trollmoves_core.role.Role.recognises` is surest of the file;
    ConfigError when none or several are."""
    host = host or default_host()
    content = read_config(path)
    scores = {name: role.recognises(content) for name, role in sorted(host.roles.classes.items())}
    best = max(scores.values(), default=0)
    found = [name for name, score in scores.items() if score == best]
    if best <= 0:
        kind = "sections" if isinstance(content, dict) and all(isinstance(v, Section) for v in content.values()) \
            else "content"
        message = f"cannot tell the role (no installed role recognises its {kind}); give --role"
        missing = sorted({pkg for name, pkg in KNOWN_PROVIDERS["role"].items() if name not in host.roles.classes})
        if missing:
            message += f", or install the roles: pip install {' '.join(missing)}"
        raise ConfigError(message, file=path)
    if len(found) > 1:
        raise ConfigError(f"cannot tell the role (it could be {' or '.join(found)}); give --role", file=path)
    return found[0]


# -- the command -------------------------------------------------------------------------

def check_file(path: str, host: PluginHost, role: str | None = None) -> Report:
    """Check ``path`` as ``role`` (detected when None) by asking that role."""
    if not os.path.exists(path):
        return Report(path, role or "?", [Problem(path, "no such file")])
    yaml_file = Path(path).suffix.lower() in (".yaml", ".yml")
    if not role and yaml_file and is_logging_config(content := read_yaml(path)):
        return Report(path, LOGGING_CONFIG, [Problem(path, p) for p in logging_config_problems(content)],
                      len(content.get("handlers") or {}))
    role = role or detect_role(path, host)
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
