"""The example third-party mover passes the same conformance suite as ours."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from trollmoves_core.testing import MoverContract

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "trollmoves-example-mover"))

from trollmoves_example_mover.mover import STORE, MemoryMover


class TestMemoryMover(MoverContract):
    @pytest.fixture
    def mover(self) -> MemoryMover:
        STORE.clear()
        return MemoryMover()

    @pytest.fixture
    def remote_dir(self, tmp_path: Path) -> str:
        return f"memory://box{tmp_path}/"
