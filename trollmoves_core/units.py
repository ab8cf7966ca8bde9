"""Byte counts for humans, in one unit system (binary: B, KiB, MiB, GiB) for every command."""

from __future__ import annotations

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def unit_of(value: float) -> tuple[int, str]:
    """``(divisor, suffix)`` of the largest unit that keeps ``value`` at 1 or more (B below 1 KiB)."""
    divisor = 1
    for suffix in UNITS:
        if value < divisor * 1024 or suffix == UNITS[-1]:
            return divisor, suffix
        divisor *= 1024
    raise AssertionError("unreachable")


def human_bytes(value: float) -> str:
    """``512 B``, ``2.9 KiB``, ``3.0 MiB``...

    >>> human_bytes(512), human_bytes(3 * 2**20)
    ('512 B', '3.0 MiB')
    """
    divisor, suffix = unit_of(value)
    return f"{value:.0f} B" if divisor == 1 else f"{value / divisor:.1f} {suffix}"


def human_progress(done: float, total: float | None) -> str:
    """``1.5/3.0 MiB`` in the total's unit; ``1.5 MiB/?`` when the total is unknown."""
    if total is None:
        return f"{human_bytes(done)}/?"
    divisor, suffix = unit_of(total)
    if divisor == 1:
        return f"{done:.0f}/{total:.0f} B"
    return f"{done / divisor:.1f}/{total / divisor:.1f} {suffix}"
