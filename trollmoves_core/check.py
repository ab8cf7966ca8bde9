"""``trollmoves check CONFIG [--role ROLE]``: validate a configuration without starting anything.

The role is read from the file (an INI section with ``origin`` is a server, one with
``providers`` a client, both a mirror; a YAML file with targets is a dispatcher, one with a
``bucket`` a downloader) or given with ``--role``. The generic checks cover what every
installation gets wrong sooner or later: unknown keys (typos), values of the wrong type,
missing required keys, destinations whose scheme no installed plugin serves (with the
``pip install`` hint), origin directories that do not exist or cannot be read, and trollsift
patterns that do not parse. They use upstream trollmoves 0.19's key names.

Roles add their own checks without a hook: a role class may define

* ``check_config(path) -> list[str]`` (a classmethod): more problems, one line each;
* ``EXTRA_CONFIG_KEYS`` (a set of key names): keys it accepts beyond upstream's.

Each problem is printed as ``file: [section] key: problem``. Exit status: 0 when there is no
error (warnings do not count unless ``--strict``), 2 otherwise.
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trollmoves_core.config import Section, read_ini, read_yaml
from trollmoves_core.exceptions import ConfigError, PluginConflictError, UnknownPluginError
from trollmoves_core.plugins import PluginHost
from trollmoves_core.uri import parse_uri, redact

HELP = "validate a configuration file without starting anything"
DESCRIPTION = (HELP + ". The role is guessed from the file unless --role is given. Each problem is printed as "
               "'file: [section] key: problem'. Exit 0 when no errors were found, 2 otherwise.")

CONNECTION_PREFIX = "connection_parameters__"

SERVER_KEYS = frozenset({
    "origin", "listen", "topic", "request_port", "request_address", "station", "info", "compression", "prog",
    "delete", "remove_delay", "unpack", "working_directory", "watchdog_timeout",
    "topics", "services", "addr_listener", "addresses", "timeout", "translate", "nameserver",
    "publish_port", "publisher_port", "req_timeout", "transfer_req_timeout",
    "connection_uptime", "ssh_key_filename", "ssh_connection_timeout", "ssh_private_key_file",
    # ours
    "request_bind", "allowed_clients", "server_secret_key_file", "clients_public_keys_directory",
})
CLIENT_KEYS = frozenset({
    "providers", "destination", "topic", "publish_port", "nameservers", "login", "heartbeat",
    "heartbeat_alarm_scale", "req_timeout", "transfer_req_timeout", "processing_delay", "backup_targets",
    "compression", "xritdecompressor", "delete", "working_directory", "create_target_directory", "ftp_root",
    "block_size",
    "bind_address", "max_requests_in_flight", "request_attempts",  # ours
})
MIRROR_KEYS = SERVER_KEYS | CLIENT_KEYS | {"client_topic"}
DISPATCHER_TARGET_KEYS = frozenset({"host", "directory", "filepattern", "connection_parameters", "aliases",
                                    "publish_topic", "dispatch_configs", "publish_uri"})
DISPATCHER_ITEM_KEYS = frozenset({"topics", "conditions", "host", "directory", "filepattern"})
DISPATCHER_SUBSCRIBER_KEYS = frozenset({"subscribe_addresses", "nameserver", "subscribe_services"})
DISPATCHER_RESERVED = ("posttroll_subscriber", "target_defaults")
DOWNLOADER_KEYS = frozenset({"subscribe-topic", "publish-topic", "bucket", "download_destination", "s3_kwargs",
                             "services", "subscriber_addresses", "logging",
                             # ours
                             "publish_port", "nameservers", "subscribe_nameserver", "parallel_downloads",
                             "connection_parameters"})

_INTS = {"server": ("request_port", "publish_port"),
         "client": ("publish_port", "block_size", "max_requests_in_flight", "request_attempts")}
_FLOATS = {"server": ("remove_delay", "watchdog_timeout", "timeout"),
           "client": ("req_timeout", "transfer_req_timeout", "heartbeat_alarm_scale", "processing_delay")}
_BOOLS = {"server": ("delete",), "client": ("delete", "heartbeat", "create_target_directory")}


@dataclass(frozen=True)
class Problem:
    """One finding, located as precisely as the file allows."""

    file: str
    message: str
    section: str | None = None
    key: str | None = None
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.file}: "
        if self.section:
            where += f"[{self.section}] "
        if self.key:
            where += f"{self.key}: "
        return where + ("warning: " if self.warning else "") + self.message


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


# -- shared helpers ----------------------------------------------------------------------

def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable trollsift pattern, or None when it is (never shows a password)."""
    from trollsift import Parser
    from trollsift.parser import regex_format

    try:
        Parser(pattern).globify()
        re.compile(regex_format(pattern))
    except Exception as err:  # trollsift and re raise assorted types for bad patterns
        return f"invalid trollsift pattern {redact(pattern)!r}: {err}"
    return None


def mover_problem(host: PluginHost, uri: str) -> str | None:
    """Why no installed mover serves ``uri``'s scheme (with the install hint), or None."""
    try:
        scheme = parse_uri(uri).scheme
    except ValueError as err:
        return str(err)
    try:
        host.mover_class(scheme)
    except (UnknownPluginError, PluginConflictError) as err:
        return str(err)
    return None


def directory_problem(directory: Path, *, write: bool = False) -> str | None:
    """Why ``directory`` cannot be watched (or written, with ``write``), or None."""
    if not directory.exists():
        return f"directory {directory} does not exist"
    if not directory.is_dir():
        return f"{directory} is not a directory"
    mode = os.R_OK | os.X_OK | (os.W_OK if write else 0)
    if not os.access(directory, mode):
        return f"directory {directory} is not {'writable' if write else 'readable'} by this user"
    return None


def _nearest_existing(path: Path) -> Path | None:
    for parent in path.absolute().parents:
        if parent.exists():
            return parent if parent.is_dir() else None
    return None


class _Collector:
    """Gathers problems for one file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def add(self, message: str, section: str | None = None, key: str | None = None, *,
            warning: bool = False) -> None:
        problem = Problem(self.file, message, section, key, warning)
        if problem not in self.problems:
            self.problems.append(problem)

    def typed(self, section: Section, getter: Callable[[str], Any], keys: Iterable[str]) -> None:
        for key in keys:
            try:
                getter(key)
            except ConfigError as err:
                self.add(_bare(err), section.name, key)


def _bare(err: ConfigError) -> str:
    """The message of a ConfigError without its file/section/key prefix."""
    text = str(err)
    for part in (f"{err.file}: " if err.file else "", f"[{err.section}] " if err.section else "",
                 f"{err.key}: " if err.key else ""):
        text = text.removeprefix(part)
    return text


# -- INI roles ---------------------------------------------------------------------------

def check_ini(path: str, role: str, host: PluginHost, extra_keys: Iterable[str] = ()) -> tuple[list[Problem], int]:
    """Generic checks of a server, client or mirror INI file."""
    out = _Collector(path)
    try:
        sections = read_ini(path)
    except ConfigError as err:
        out.add(_bare(err))
        return out.problems, 0
    known = {"server": SERVER_KEYS, "client": CLIENT_KEYS, "mirror": MIRROR_KEYS}[role] | set(extra_keys)
    defaults = _default_keys(path)
    for key in sorted(defaults - known):
        if not key.startswith(CONNECTION_PREFIX):
            _unknown(out, role, "DEFAULT", key)
    if not sections:
        out.add("no sections: nothing to run")
    ports: dict[int, str] = {}
    for name, section in sections.items():
        for key in section:
            if key not in known and key not in defaults and not key.startswith(CONNECTION_PREFIX):
                _unknown(out, role, name, key)
        if role in ("server", "mirror"):
            _check_server_section(out, section, ports, mirror=role == "mirror")
        if role in ("client", "mirror"):
            _check_client_section(out, section, host, mirror=role == "mirror")
    return out.problems, len(sections)


def _default_keys(path: str) -> set[str]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error:
        return set()
    return set(parser.defaults())


def _unknown(out: _Collector, role: str, section: str, key: str) -> None:
    if role == "client":
        out.add("not a client option; it only overwrites message metadata of the same name", section, key,
                warning=True)
    else:
        out.add(f"unknown key for a {role}", section, key)


def _check_server_section(out: _Collector, section: Section, ports: dict[int, str], *, mirror: bool = False) -> None:
    """Server keys; in a mirror ``origin`` only filters what is mirrored, so it may be absent."""
    name = section.name
    origin, listen = section.get("origin", "").strip(), section.get("listen", "").strip()
    if not origin and not listen and not mirror:
        out.add("neither origin nor listen: this section is skipped", name, warning=True)
        return
    if origin and listen:
        out.add("give either origin or listen, not both", name, "listen")
    topic = section.get("topic", "").strip()
    if not topic:
        out.add("required key is missing", name, "topic")
    elif not topic.startswith("/"):
        out.add(f"must start with '/', got {topic!r}", name, "topic")
    if origin:
        _check_origin(out, name, origin)
    out.typed(section, section.get_int, (k for k in _INTS["server"] if k in section))
    out.typed(section, section.get_float, (k for k in _FLOATS["server"] if k in section))
    out.typed(section, section.get_bool, (k for k in _BOOLS["server"] if k in section))
    try:
        port = section.get_int("request_port")
    except ConfigError:
        return
    if port is None:
        return
    if not 0 < port < 65536:
        out.add(f"expected a port number 1-65535, got {port}", name, "request_port")
    elif ports.setdefault(port, name) != name:
        out.add(f"port {port} is already used by [{ports[port]}]", name, "request_port")


def _check_origin(out: _Collector, section: str, origin: str) -> None:
    if not os.path.isabs(origin):
        out.add(f"must be an absolute path pattern, got {origin!r}", section, "origin")
        return
    problem = pattern_problem(origin)
    if problem:
        out.add(problem, section, "origin")
        return
    head = origin.split("{", 1)[0]
    directory = Path(head if head.endswith("/") else os.path.dirname(head) or "/")
    problem = directory_problem(directory)
    if problem:
        out.add(problem, section, "origin")


def _check_client_section(out: _Collector, section: Section, host: PluginHost, *, mirror: bool = False) -> None:
    """Client keys; a mirror stages into a temporary directory by default and publishes
    through its own server side, so ``destination`` is optional and ``nameservers`` moot."""
    name = section.name
    providers = section.get("providers", "").split()
    if not providers:
        out.add("required key is missing", name, "providers")
    for provider in providers:
        address = provider.split("/", 1)[0]
        address = address.split("://", 1)[-1]
        hostname, sep, port = address.rpartition(":")
        if not sep or not hostname or not port.isdigit() or not 0 < int(port) < 65536:
            out.add(f"expected host:port, got {provider!r}", name, "providers")
    destination = section.get("destination", "").strip()
    if not destination:
        if not mirror:
            out.add("required key is missing", name, "destination")
    else:
        for problem in (pattern_problem(destination), mover_problem(host, destination)):
            if problem:
                out.add(problem, name, "destination")
    out.typed(section, section.get_int, (k for k in _INTS["client"] if k in section))
    out.typed(section, section.get_float, (k for k in _FLOATS["client"] if k in section))
    out.typed(section, section.get_bool, (k for k in _BOOLS["client"] if k in section))
    nameservers = section.get("nameservers", "").strip().lower()
    fixed_port = section.get("publish_port", "0").strip() not in ("", "0")
    would_multicast = not nameservers or (nameservers in ("false", "no", "0", "off") and not fixed_port)
    if would_multicast and not mirror:
        out.add("upstream's client would announce by multicast here (trollmoves never does): set "
                "nameservers = false with a fixed publish_port, or list the nameservers", name, "nameservers",
                warning=True)
    if not section.get("topic", "").strip():
        try:
            heartbeat = section.get_bool("heartbeat", True)
        except ConfigError:
            heartbeat = True
        if not heartbeat:
            out.add("no topic and heartbeat off: this section is skipped", name, warning=True)


# -- YAML roles --------------------------------------------------------------------------

def check_dispatcher(path: str, host: PluginHost, extra_keys: Iterable[str] = ()) -> tuple[list[Problem], int]:
    """Generic checks of a dispatcher YAML file."""
    out = _Collector(path)
    data = _load_yaml(out, path)
    if data is None:
        return out.problems, 0
    target_keys = DISPATCHER_TARGET_KEYS | set(extra_keys)
    subscriber = data.get("posttroll_subscriber")
    if subscriber is not None:
        if not isinstance(subscriber, Mapping):
            out.add("expected a mapping", "posttroll_subscriber")
        else:
            for key in sorted(set(subscriber) - DISPATCHER_SUBSCRIBER_KEYS - set(extra_keys)):
                out.add("unknown key", "posttroll_subscriber", key)
            addresses = subscriber.get("subscribe_addresses")
            if addresses is not None and not _str_list(addresses):
                out.add("expected a list of tcp://host:port addresses", "posttroll_subscriber", "subscribe_addresses")
    defaults = data.get("target_defaults") or {}
    if not isinstance(defaults, Mapping):
        out.add("expected a mapping", "target_defaults")
        defaults = {}
    targets = {name: value for name, value in data.items() if name not in DISPATCHER_RESERVED}
    if not targets:
        out.add("no targets: nothing to dispatch")
    for key_name, raw in [("target_defaults", defaults), *targets.items()]:
        name = str(key_name)
        if not isinstance(raw, Mapping):
            out.add("expected a mapping of target keys", name)
            continue
        for key in sorted(set(map(str, raw)) - target_keys):
            out.add("unknown key for a dispatcher target", name, key)
        if name == "target_defaults":
            continue
        target = {**defaults, **raw}
        _check_dispatch_target(out, name, target, host)
    return out.problems, len(targets)


def _check_dispatch_target(out: _Collector, name: str, target: Mapping[str, Any], host: PluginHost) -> None:
    target_host = target.get("host") or ""
    if not isinstance(target_host, str):
        out.add("expected a URL string", name, "host")
        target_host = ""
    elif target_host:
        problem = mover_problem(host, target_host)
        if problem:
            out.add(problem, name, "host")
    for key in ("directory", "filepattern", "publish_topic"):
        value = target.get(key)
        if value is not None:
            problem = pattern_problem(str(value))
            if problem:
                out.add(problem, name, key)
    if "connection_parameters" in target and not isinstance(target["connection_parameters"], Mapping | None):
        out.add("expected a mapping", name, "connection_parameters")
    items = target.get("dispatch_configs")
    if items is None:
        out.add("no dispatch_configs: this target never receives anything", name, warning=True)
        return
    if not isinstance(items, list):
        out.add("expected a list of dispatch items", name, "dispatch_configs")
        return
    for index, item in enumerate(items):
        where = f"dispatch_configs[{index}]"
        if not isinstance(item, Mapping):
            out.add("expected a mapping with topics", name, where)
            continue
        for key in sorted(set(map(str, item)) - DISPATCHER_ITEM_KEYS):
            out.add("unknown key for a dispatch item", name, f"{where}.{key}")
        topics = item.get("topics")
        if not topics or not _str_list(topics):
            out.add("required: a list of topics", name, f"{where}.topics")
        if isinstance(item.get("host"), str) and item["host"]:
            problem = mover_problem(host, item["host"])
            if problem:
                out.add(problem, name, f"{where}.host")
        for key in ("directory", "filepattern"):
            if item.get(key) is not None:
                problem = pattern_problem(str(item[key]))
                if problem:
                    out.add(problem, name, f"{where}.{key}")


def check_downloader(path: str, host: PluginHost, extra_keys: Iterable[str] = ()) -> tuple[list[Problem], int]:
    """Generic checks of an s3downloader YAML file."""
    out = _Collector(path)
    data = _load_yaml(out, path)
    if data is None:
        return out.problems, 0
    for key in sorted(set(map(str, data)) - DOWNLOADER_KEYS - set(extra_keys)):
        out.add("unknown key for a downloader", None, key)
    for key in ("subscribe-topic", "publish-topic"):
        if not data.get(key):
            out.add("required key is missing", None, key)
    if data.get("bucket"):
        problem = mover_problem(host, "s3://bucket/")
        if problem:
            out.add(problem, None, "bucket")
    else:
        out.add("not set: upstream's s3downloader requires it (trollmoves fetches each message's uri)", None,
                "bucket", warning=True)
    if "logging" in data:
        out.add("not used by trollmoves: configure logging with -l FILE or -c LOGCONFIG.yaml", None, "logging",
                warning=True)
    destination = Path(str(data.get("download_destination") or "."))
    # The downloader creates a missing destination at start: check the directory it creates it in.
    existing = destination if destination.exists() else _nearest_existing(destination)
    problem = directory_problem(existing or destination, write=True)
    if problem:
        out.add(problem, None, "download_destination")
    elif existing != destination:
        out.add(f"directory {destination} does not exist yet; the downloader creates it", None,
                "download_destination", warning=True)
    if "s3_kwargs" in data and not isinstance(data["s3_kwargs"], Mapping):
        out.add("expected a mapping", None, "s3_kwargs")
    return out.problems, 1


def _load_yaml(out: _Collector, path: str) -> Mapping[str, Any] | None:
    try:
        data = read_yaml(path)
    except ConfigError as err:
        out.add(_bare(err))
        return None
    if not isinstance(data, Mapping):
        out.add(f"expected a mapping at the top level, got {type(data).__name__}")
        return None
    return data


def _str_list(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


# -- the command -------------------------------------------------------------------------

GENERIC_CHECKS: dict[str, Callable[..., tuple[list[Problem], int]]] = {
    "server": lambda path, host, extra: check_ini(path, "server", host, extra),
    "client": lambda path, host, extra: check_ini(path, "client", host, extra),
    "mirror": lambda path, host, extra: check_ini(path, "mirror", host, extra),
    "dispatcher": check_dispatcher,
    "downloader": check_downloader,
}


def check_file(path: str, host: PluginHost, role: str | None = None) -> Report:
    """Check ``path`` as ``role`` (detected when None): generic checks, then the role's own."""
    if not os.path.exists(path):
        return Report(path, role or "?", [Problem(path, "no such file")])
    role = role or detect_role(path)
    role_class = host.roles.classes.get(role)
    problems: list[Problem] = []
    sections = 0
    generic = GENERIC_CHECKS.get(role)
    if generic is not None:
        problems, sections = generic(path, host, getattr(role_class, "EXTRA_CONFIG_KEYS", ()))
    elif role_class is None or not hasattr(role_class, "check_config"):
        raise ConfigError(f"no checks for role {role!r} (known: {', '.join(sorted(GENERIC_CHECKS))})", file=path)
    if role_class is None:
        try:
            host.roles.get(role)
        except (UnknownPluginError, PluginConflictError) as err:
            problems.append(Problem(path, f"this file cannot run here: {err}", warning=True))
    elif hasattr(role_class, "check_config"):
        seen = {str(p) for p in problems}
        try:
            extra = list(role_class.check_config(path))
        except ConfigError as err:
            extra = [str(err)]
        except Exception as err:  # a bug in a role's checks must not hide the generic findings
            extra = [f"{path}: the {role} role's own checks failed: {type(err).__name__}: {err}"]
        for raw_line in extra:
            line = raw_line if raw_line.startswith(f"{path}:") else f"{path}: {raw_line}"
            if line not in seen:
                seen.add(line)
                problems.append(_RoleLine(path, line))
    return Report(path, role, problems, sections)


class _RoleLine(Problem):
    """A line a role's ``check_config`` returned, printed as it is."""

    def __init__(self, file: str, line: str) -> None:
        super().__init__(file, line)

    def __str__(self) -> str:
        return self.message


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", nargs="+", help="configuration file(s) to check")
    parser.add_argument("--role", metavar="ROLE", help="check as this role instead of guessing from the file "
                        f"({', '.join(GENERIC_CHECKS)})")
    parser.add_argument("--strict", action="store_true", help="fail on warnings too")
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
