"""Hook implementations of the trollmoves-s3 plugin."""

from __future__ import annotations

from trollmoves_core import hookimpl
from trollmoves_core.mover import Mover


@hookimpl
def trollmoves_register_movers() -> list[type[Mover]]:
    from trollmoves_s3.mover import S3Mover

    return [S3Mover]
