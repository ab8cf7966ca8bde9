"""Declarative config schemas and the findings of ``trollmoves check``.

A role declares, once per place in its config file (an INI section, a YAML target, a dispatch
item...), a :class:`Schema`: a table of :class:`Key` rows naming each key, its type, default,
whether it is upstream trollmoves' or ours, and whether it is used at all. The role's loader
and its :meth:`~trollmoves_core.role.Role.check` both read that table, so the keys a role
accepts are listed in one place.

Key rules: a key of the table never makes a check fail for being there, even one the role does
not use (upstream reads it, or tolerates it in its examples); a key nobody knows is a warning
with a "did you mean" suggestion; a key of another place that restricts what is done there
(``restricts=True``) is an error, because ignoring it would widen what is done.
"""

from __future__ import annotations

import configparser
import contextlib
import difflib
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from trollmoves_core.config import Section, read_yaml
from trollmoves_core.exceptions import ConfigError, PluginConflictError, UnknownPluginError
from trollmoves_core.uri import parse_uri, redact

if TYPE_CHECKING:
    from trollmoves_core.plugins import PluginHost

Origin = Literal["upstream", "ours"]


@dataclass(frozen=True)
class Key:
    """One config key: its name, type (``str``, ``int``, ``float``, ``bool``, ``list``, ``dict``),
    default, whose it is, and what it does (``doc``).

    ``used=False``: accepted and ignored (upstream reads it to no effect, or never reads it but
    its examples carry it). ``restricts=True``: the key narrows what is done, so finding it in a
    wrong place is an error rather than a warning.
    """

    name: str
    type: type = str
    default: Any = None
    origin: Origin = "upstream"
    doc: str = ""
    used: bool = True
    restricts: bool = False


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
class Findings:
    """The problems found in one file, at most one per location (file, section, key), and how
    many sections (chains, targets) it has."""

    file: str
    problems: list[Problem] = field(default_factory=list)
    sections: int = 0

    def add(self, message: str, section: str | None = None, key: str | None = None, *,
            warning: bool = False) -> None:
        """Record a problem unless one is already recorded at the same place (an error replaces
        a warning there)."""
        problem = Problem(self.file, message, section, key, warning)
        for index, old in enumerate(self.problems):
            if old.section == section and old.key == key and (key is not None or old.message == message):
                if old.warning and not warning:
                    self.problems[index] = problem
                return
        self.problems.append(problem)

    def add_error(self, err: ConfigError, *, section: str | None = None) -> None:
        """Record a ConfigError raised by a loader, located where it says."""
        self.add(bare(err), err.section or section, err.key)

    @contextlib.contextmanager
    def loader_warnings(self, logger: str) -> Iterator[None]:
        """While the block runs, warnings logged by ``logger`` (and its children) are recorded as
        warnings, located from their ``file: [section] key: message`` form, instead of logged;
        one at a place that already has a problem (or of a key already reported in ``[DEFAULT]``)
        is dropped: the check said it already."""
        handler = _Recorder(self)
        log = logging.getLogger(logger)
        propagate, log.propagate = log.propagate, False
        log.addHandler(handler)
        try:
            yield
        finally:
            log.removeHandler(handler)
            log.propagate = propagate

    def _add_logged(self, text: str) -> None:
        section = key = None
        if text.startswith(f"{self.file}: "):
            text = text.removeprefix(f"{self.file}: ")
            match = _LOCATED.match(text)
            if match:
                section, key, text = match.group("section"), match.group("key"), match.group("message")
        inherited = ("DEFAULT",) if key is not None else ()  # an INI [DEFAULT] key, logged for each section
        if not any(p.key == key and p.section in (section, *inherited) for p in self.problems):
            self.problems.append(Problem(self.file, text, section, key, warning=True))


_LOCATED = re.compile(r"(?:\[(?P<section>[^\]]*)\]:? )?(?:(?P<key>[^\s:\[][^\s:]*): )?(?P<message>.*)", re.S)


class _Recorder(logging.Handler):
    def __init__(self, out: Findings) -> None:
        super().__init__(logging.WARNING)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        self.out._add_logged(record.getMessage())


class Schema:
    """The keys of one place of a config file (``place`` names it in messages: "server",
    "dispatcher target"...); keys starting with one of ``prefixes`` are accepted too.
    ``unknown_message`` replaces "unknown key, ignored" (a "did you mean" follows)."""

    def __init__(self, place: str, keys: Iterable[Key], *, prefixes: tuple[str, ...] = (),
                 unknown_message: str | None = None) -> None:
        self.place = place
        self.unknown_message = unknown_message or "unknown key, ignored"
        self.keys: dict[str, Key] = {}
        for key in keys:
            self.keys.setdefault(key.name, key)
        self.prefixes = prefixes

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return name in self.keys or bool(self.prefixes and name.startswith(self.prefixes))

    def __or__(self, other: Schema) -> Schema:
        return Schema(self.place, [*self.keys.values(), *other.keys.values()],
                      prefixes=self.prefixes + other.prefixes, unknown_message=self.unknown_message)

    def names(self, *, origin: Origin | None = None, used: bool | None = None) -> frozenset[str]:
        """The names of the keys of ``origin`` (any when None) that are used (or not, or either)."""
        return frozenset(k.name for k in self.keys.values()
                         if (origin is None or k.origin == origin) and (used is None or k.used == used))

    def renamed(self, place: str, *, drop: Iterable[str] = (), unused: Iterable[str] = ()) -> Schema:
        """A copy for another place: without ``drop``, with ``unused`` marked unused."""
        dropped, idle = set(drop), set(unused)
        keys = [replace(k, used=False) if k.name in idle else k for k in self.keys.values() if k.name not in dropped]
        return Schema(place, keys, prefixes=self.prefixes)

    def default(self, name: str) -> Any:
        """The default of key ``name``."""
        return self.keys[name].default

    def suggestion(self, name: str) -> str | None:
        """The known key closest to ``name``, if one is close enough to be a typo."""
        close = difflib.get_close_matches(name, sorted(self.keys), n=1, cutoff=0.75)
        return close[0] if close else None

    def unknown(self, name: str, *, elsewhere: Mapping[str, Schema] = {}) -> tuple[str, bool] | None:
        """None when ``name`` belongs here, else (message, is_error): an error for a key of a
        place in ``elsewhere`` that restricts what is done there, else a warning."""
        if name in self:
            return None
        for where, schema in elsewhere.items():
            key = schema.keys.get(name)
            if key is not None and key.restricts:
                return (f"belongs in {where}; ignored here it would widen what is done, so it is refused", True)
        for where, schema in elsewhere.items():
            if name in schema.keys:
                return f"not a key of a {self.place}: it belongs in {where}; ignored", False
        message = self.unknown_message
        close = self.suggestion(name)
        if close:
            message += f"; did you mean `{close}`?"
        return message, False

    def check_keys(self, out: Findings, keys: Iterable[Any], section: str | None, *, prefix: str = "",
                   elsewhere: Mapping[str, Schema] = {}) -> None:
        """Record the keys that do not belong here (see :meth:`unknown`)."""
        for name in keys:
            found = self.unknown(str(name), elsewhere=elsewhere)
            if found:
                out.add(found[0], section, prefix + str(name), warning=not found[1])

    def check_ini_types(self, out: Findings, section: Section) -> None:
        """Record the values of ``section`` that do not parse as their key's type."""
        for kind, getter in ((int, section.get_int), (float, section.get_float), (bool, section.get_bool)):
            for name in section:
                key = self.keys.get(name)
                if key is None or not key.used or key.type is not kind:
                    continue
                try:
                    getter(name)
                except ConfigError as err:
                    out.add(bare(err), section.name, name)

    def refuse_misplaced(self, file: str, section: str | None, keys: Iterable[Any], *, prefix: str = "",
                         elsewhere: Mapping[str, Schema]) -> None:
        """Raise a ConfigError for the first key that is an error here (see :meth:`unknown`)."""
        for name in keys:
            found = self.unknown(str(name), elsewhere=elsewhere)
            if found and found[1]:
                raise ConfigError(found[0], file=file, section=section, key=prefix + str(name))

    def warnings(self, keys: Iterable[Any], *, elsewhere: Mapping[str, Schema] = {}) -> list[tuple[str, str]]:
        """(key, message) for each key that does not belong here but is not an error, for loaders to log."""
        found = ((str(name), self.unknown(str(name), elsewhere=elsewhere)) for name in keys)
        return [(name, result[0]) for name, result in found if result and not result[1]]


# -- recognising a role's file ----------------------------------------------------------------

def ini_keys(content: Any) -> set[str] | None:
    """Every key of every section when ``content`` is an INI file's (see
    :meth:`~trollmoves_core.role.Role.recognises`), else None."""
    if isinstance(content, dict) and content and all(isinstance(v, Section) for v in content.values()):
        return {key for section in content.values() for key in section}
    return None


def yaml_mapping(content: Any) -> Mapping[Any, Any] | None:
    """``content`` when it is a YAML file's top-level mapping, else None."""
    if isinstance(content, Mapping) and ini_keys(content) is None:
        return content
    return None


def read_yaml_mapping(out: Findings, path: str) -> Mapping[Any, Any] | None:
    """The top-level mapping of the YAML file at ``path`` for a role's check, or None once ``out``
    records why there is none (unreadable, not YAML, or not a mapping)."""
    try:
        data = read_yaml(path)
    except ConfigError as err:
        out.add_error(err)
        return None
    if not isinstance(data, Mapping):
        out.add(f"expected a mapping at the top level, got {type(data).__name__}")
        return None
    return data


# -- shared checks ------------------------------------------------------------------------

def ini_defaults(path: str) -> set[str]:
    """The keys of the ``[DEFAULT]`` section of the INI file at ``path`` (empty when unreadable)."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error:
        return set()
    return set(parser.defaults())


def bare(err: ConfigError) -> str:
    """The message of a ConfigError without its file/section/key prefix."""
    text = str(err)
    for part in (f"{err.file}: " if err.file else "", f"[{err.section}] " if err.section else "",
                 f"{err.key}: " if err.key else ""):
        text = text.removeprefix(part)
    return text


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
        host.movers.get(scheme)
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


def nearest_existing(path: Path) -> Path | None:
    """The closest existing parent directory of ``path``, or None."""
    for parent in path.absolute().parents:
        if parent.exists():
            return parent if parent.is_dir() else None
    return None
