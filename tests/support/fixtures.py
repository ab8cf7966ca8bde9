"""Fixtures shared by several test folders; a folder's conftest imports the ones it uses."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """An origin and an output directory."""
    origin, out = tmp_path / "in", tmp_path / "out"
    origin.mkdir()
    out.mkdir()
    return origin, out
