"""Values of the YAML configurations (dispatcher, downloader, wis2-subscriber) that several keys share."""

from __future__ import annotations

from typing import Any

from trollmoves_core.bwlimit import Schedule, parse_limit


def string_list(value: Any) -> list[str]:
    """A string (comma-separated, as upstream writes ``subscriber_addresses``) or a list of strings,
    stripped, empty entries dropped; ``None`` is an empty list. TypeError for anything else."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise TypeError(f"expected a string or a list of strings, got {value!r}")


def bandwidth_limit(value: Any) -> Schedule | None:
    """A ``bwlimit`` value (:mod:`trollmoves_core.bwlimit`); YAML reads a bare ``off`` as false,
    which is no limit too. ValueError saying what is wrong."""
    return parse_limit(None if value is None or value is False else str(value))


def integer(value: Any, *, minimum: int) -> int:
    """A whole number of at least ``minimum``, written as a YAML integer or as text (``"4"``);
    ValueError saying what is wrong (a bool is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected an integer, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"expected an integer, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"must be at least {minimum}, got {number}")
    return number
