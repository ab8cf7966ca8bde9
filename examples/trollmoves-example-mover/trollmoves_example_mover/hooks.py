"""Hook implementations: tell trollmoves which movers this distribution provides."""

from __future__ import annotations

from trollmoves_core import hookimpl
from trollmoves_core.mover import Mover


@hookimpl
def trollmoves_register_movers() -> list[type[Mover]]:
    from trollmoves_example_mover.mover import MemoryMover

    return [MemoryMover]
