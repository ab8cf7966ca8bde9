"""Shared pytest configuration: ``tests/`` is on sys.path, so ``support`` is importable.

Every test starts with unspent log budgets: each module's :class:`RateLimitedLog` lives as long as
the process, so lines an earlier test spent would be missing from a later test's log.
"""

from __future__ import annotations

import sys

import pytest
from trollmoves_roles.observe.ratelimit import RateLimitedLog


@pytest.fixture(autouse=True)
def fresh_rate_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh copy of every loaded ``trollmoves*`` module's RateLimitedLog for this test."""
    for name, module in list(sys.modules.items()):
        if not name.startswith("trollmoves") or module is None:
            continue
        for attribute, value in list(vars(module).items()):
            if isinstance(value, RateLimitedLog):
                monkeypatch.setattr(module, attribute, RateLimitedLog(value.logger, period=value.period,
                                                                      burst=value.burst))
