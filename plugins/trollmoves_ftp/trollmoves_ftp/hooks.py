"""Hook implementations of the trollmoves-ftp plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trollmoves_core import hookimpl

if TYPE_CHECKING:
    from trollmoves_core.mover import Mover


@hookimpl
def trollmoves_register_movers() -> list[type[Mover]]:
    from trollmoves_ftp.mover import FtpMover

    return [FtpMover]
