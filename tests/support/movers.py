"""Servers borrowed from the mover plugins' test folders (only when those folders exist), and
skipping where a scheme has no mover plugin."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]
"""The ``tests/`` folder."""


def borrow(folder: str) -> Any:
    """Load ``tests/<folder>/conftest.py`` under another name, its folder importable; None if absent."""
    path = TESTS / folder / "conftest.py"
    if not path.exists():
        return None
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"borrowed_{folder}_conftest", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except (ImportError, pytest.skip.Exception):
        return None
    return module


def require_mover(scheme: str) -> None:
    """Skip unless a mover plugin serves ``scheme``."""
    from trollmoves_core.plugins import default_host

    if scheme not in default_host().movers.classes:
        pytest.skip(f"MOVER NOT READY: no mover plugin for {scheme}:// is registered yet")
