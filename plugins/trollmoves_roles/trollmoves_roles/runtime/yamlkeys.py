"""Values of the YAML configurations (dispatcher, downloader) that several keys share."""

from __future__ import annotations

from typing import Any


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
