"""Dispatch conditions on message metadata, with upstream's semantics and no ``eval``.

``conditions`` is a list of condition sets; a message matches when **any** set matches. A set
matches when **all** its keys match:

* a list value: the metadata value is one of the list;
* a string starting with ``<``, ``>``, ``=`` or ``!`` (``'>50'``, ``'<=30'``, ``'!=0'``): a
  numeric comparison of the metadata value;
* anything else: equality;
* ``except``: a nested set that must **not** match.

A key missing from the metadata never matches.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_COMPARISON = re.compile(r"^\s*(<=|>=|==|!=|<|>|=)\s*(.+?)\s*$")
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "=": operator.eq, "!=": operator.ne,
}

Test = Callable[[Any], bool]


@dataclass(frozen=True)
class ConditionSet:
    tests: tuple[tuple[str, Test], ...]
    excluded: ConditionSet | None = None

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        for key, test in self.tests:
            if key not in metadata or not test(metadata[key]):
                return False
        return self.excluded is None or not self.excluded.matches(metadata)


@dataclass(frozen=True)
class Condition:
    """Any of ``sets``."""

    sets: tuple[ConditionSet, ...]

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        return any(s.matches(metadata) for s in self.sets)


def parse_conditions(raw: Any) -> Condition | None:
    """Build a :class:`Condition` from the YAML value; None when there are no conditions.

    :raises ValueError: for a malformed value (the message says what is wrong).
    """
    if raw is None:
        return None
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
        raise ValueError("expected a list of {key: value} condition sets")
    return Condition(tuple(_parse_set(s) for s in raw))


def _parse_set(raw: dict[str, Any]) -> ConditionSet:
    tests = []
    excluded = None
    for key, expected in raw.items():
        if key == "except":
            if not isinstance(expected, dict):
                raise ValueError("'except' expects a {key: value} condition set")
            excluded = _parse_set(expected)
        else:
            tests.append((str(key), _test(expected)))
    return ConditionSet(tuple(tests), excluded)


def _test(expected: Any) -> Test:
    if isinstance(expected, list):
        options = list(expected)
        return lambda value: any(_equal(value, option) for option in options)
    if isinstance(expected, str) and expected[:1] in ("<", ">", "=", "!"):
        match = _COMPARISON.match(expected)
        if not match:
            raise ValueError(f"cannot read the comparison {expected!r}")
        compare, threshold_text = _OPERATORS[match.group(1)], match.group(2)
        try:
            threshold = float(threshold_text)
        except ValueError:
            raise ValueError(f"comparison {expected!r} needs a number after the operator") from None
        return lambda value: _compare(value, compare, threshold)
    return lambda value: _equal(value, expected)


def _equal(value: Any, expected: Any) -> bool:
    if value == expected:
        return True
    # YAML may read an item as int while the message carries a string, or the other way round.
    scalar = (str, int, float)
    return isinstance(value, scalar) and isinstance(expected, scalar) and str(value) == str(expected)


def _compare(value: Any, compare: Callable[[Any, Any], bool], threshold: float) -> bool:
    try:
        return bool(compare(float(value), threshold))
    except (TypeError, ValueError):
        return False
