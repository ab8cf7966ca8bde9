"""Exceptions shared by the core and its plugins."""

from __future__ import annotations

from collections.abc import Iterator


class TrollmovesError(Exception):
    """Base class of every error trollmoves raises on purpose."""


class UnknownPluginError(TrollmovesError, LookupError):
    """No installed plugin provides the requested mover scheme, watcher or role."""


class PluginConflictError(TrollmovesError):
    """Two plugins claim the same scheme or name."""


class ConfigError(TrollmovesError, ValueError):
    """A configuration file or value is invalid.

    The message names the file, the section and the key at fault, in that order, when known.
    """

    def __init__(self, message: str, *, file: str | None = None, section: str | None = None,
                 key: str | None = None) -> None:
        self.message, self.file, self.section, self.key = message, file, section, key
        where = ""
        if file:
            where += f"{file}: "
        if section:
            where += f"[{section}] "
        if key:
            where += f"{key}: "
        super().__init__(where + message)


class TransferError(TrollmovesError):
    """A transfer failed. The message names the URI (never its password) and the cause.

    ``transient`` tells whether retrying later may succeed (connection refused, timeout)
    or not (authentication failure, permission denied, missing source).
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def causes(err: BaseException) -> Iterator[BaseException]:
    """``err`` and the exceptions it was raised from, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
