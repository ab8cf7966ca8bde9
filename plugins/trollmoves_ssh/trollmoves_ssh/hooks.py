"""Hook implementations of the trollmoves-ssh plugin: the SFTP (and ssh://) and SCP movers."""

from __future__ import annotations

from trollmoves_core import hookimpl
from trollmoves_core.mover import Mover


@hookimpl
def trollmoves_register_movers() -> list[type[Mover]]:
    from trollmoves_ssh.mover import ScpMover, SftpMover

    return [SftpMover, ScpMover]
