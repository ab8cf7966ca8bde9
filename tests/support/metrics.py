"""Reading a role's metrics endpoint."""

from __future__ import annotations

import urllib.request


def metrics(url: str) -> dict[str, float]:
    """``name{labels}`` → value from a metrics endpoint."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def counter(values: dict[str, float], name: str) -> float:
    """The sum of a metric over its label sets."""
    return sum(v for k, v in values.items() if k == name or k.startswith(name + "{"))
