"""Fixtures shared by several test folders; a folder's conftest imports the ones it uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.client import OurServer


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """An origin and an output directory."""
    origin, out = tmp_path / "in", tmp_path / "out"
    origin.mkdir()
    out.mkdir()
    return origin, out


@pytest.fixture
def servers(tmp_path: Path) -> Iterator:
    """Factory: ``servers(name, **kwargs)`` starts an :class:`OurServer` under ``tmp_path/name``; stopped at
    teardown."""
    started: list[OurServer] = []

    def start(name: str, **kwargs: object) -> OurServer:
        started.append(OurServer(tmp_path / name, **kwargs))
        return started[-1]

    yield start
    for server in started:
        server.stop()
