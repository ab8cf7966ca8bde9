"""Configuration loading shared by the roles: upstream-style INI files and YAML.

Errors are :class:`~trollmoves_core.exceptions.ConfigError` naming the file, section and key.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from trollmoves_core.exceptions import ConfigError

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off", ""}


class Section(Mapping[str, str]):
    """One INI section (with ``[DEFAULT]`` merged in) and typed, error-naming getters."""

    def __init__(self, file: str, name: str, values: Mapping[str, str]) -> None:
        self.file, self.name = file, name
        self._values = dict(values)

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def error(self, key: str | None, message: str) -> ConfigError:
        """A ConfigError located at ``key`` of this section."""
        return ConfigError(message, file=self.file, section=self.name, key=key)

    def require(self, key: str) -> str:
        """The value of ``key``, or a ConfigError saying it is missing."""
        value = self._values.get(key)
        if value is None or value.strip() == "":
            raise self.error(key, "required key is missing")
        return value

    def get_str(self, key: str, default: str | None = None) -> str | None:
        return self._values.get(key, default)

    def get_int(self, key: str, default: int | None = None) -> int | None:
        return self._convert(key, default, int, "an integer")

    def get_float(self, key: str, default: float | None = None) -> float | None:
        return self._convert(key, default, float, "a number")

    def get_bool(self, key: str, default: bool = False) -> bool:
        value = self._values.get(key)
        if value is None or not value.strip():
            return default
        try:
            return to_bool(value, key=key)
        except ConfigError:
            raise self.error(key, f"expected true/false, got {value!r}") from None

    def _convert(self, key: str, default: Any, kind: type, label: str) -> Any:
        value = self._values.get(key)
        if value is None or value.strip() == "":
            return default
        try:
            return kind(value)
        except ValueError:
            raise self.error(key, f"expected {label}, got {value!r}") from None


def to_bool(value: Any, *, key: str) -> bool:
    """A boolean from a bool or INI-style text (true/false, yes/no, on/off, 1/0; empty is false)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"expected true or false, got {value!r}", key=key)


def param_bool(params: Mapping[str, Any], key: str, default: bool) -> bool:
    """``params[key]`` as a boolean (see :func:`to_bool`), ``default`` when absent."""
    value = params.get(key)
    return default if value is None else to_bool(value, key=key)


def param_number(params: Mapping[str, Any], key: str, default: float, *, minimum: float | None = None,
                 positive: bool = False) -> float:
    """``params[key]`` as a number, ``default`` when absent; a ConfigError names the key."""
    value = params.get(key)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"expected a number, got {value!r}", key=key) from None
    if positive and number <= 0:
        raise ConfigError(f"must be positive, got {value!r}", key=key)
    if minimum is not None and number < minimum:
        raise ConfigError(f"must be at least {minimum:g}, got {value!r}", key=key)
    return number


def read_ini(path: str | os.PathLike[str]) -> dict[str, Section]:
    """Read an upstream-style INI file: one section per chain, ``[DEFAULT]`` inherited,
    no interpolation (``%`` is literal, as in strftime patterns)."""
    file = os.fspath(path)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(file, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as err:
        raise ConfigError(f"cannot read: {err.strerror}", file=file) from None
    except UnicodeDecodeError as err:
        raise ConfigError(_not_text(err), file=file) from None
    except (configparser.DuplicateSectionError, configparser.DuplicateOptionError) as err:
        what = f"key {err.option!r} appears twice in [{err.section}]" if isinstance(
            err, configparser.DuplicateOptionError) else f"section [{err.section}] appears twice"
        raise ConfigError(f"line {err.lineno}: {what} (upstream refuses this too): rename or merge one",
                          file=file) from None
    except configparser.Error as err:
        raise ConfigError(_one_line(err), file=file) from None
    return {name: Section(file, name, parser[name]) for name in parser.sections()}


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Read a YAML file; syntax errors name the file and line."""
    file = os.fspath(path)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read: {err.strerror}", file=file) from None
    except UnicodeDecodeError as err:
        raise ConfigError(_not_text(err), file=file) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or _one_line(err)
        raise ConfigError(f"{where}invalid YAML: {problem}", file=file) from None


def _not_text(err: UnicodeDecodeError) -> str:
    return (f"not UTF-8 text: byte {err.start} is {err.object[err.start:err.start + 1]!r} "
            "(a binary file, or text in another encoding: save it as UTF-8)")


def parse_key_values(items: list[str] | None, *, source: str = "-o") -> dict[str, str]:
    """Parse ``key=value`` strings (``-o`` options). Values stay strings, as in INI files:
    movers convert what they need (a password of digits must stay a string)."""
    result: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {item!r}", file=source)
        result[key.strip()] = value
    return result


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())
