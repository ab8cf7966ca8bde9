"""Hook implementations of the trollmoves-http plugin."""

from __future__ import annotations

from trollmoves_core import hookimpl
from trollmoves_core.mover import Mover


@hookimpl
def trollmoves_register_movers() -> list[type[Mover]]:
    from trollmoves_http.mover import HttpMover

    return [HttpMover]
