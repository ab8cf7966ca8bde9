"""The ``scp://`` mover."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import TYPE_CHECKING

from trollmoves_core.mover import ProgressCallback
from trollmoves_core.uri import Location
from trollmoves_ssh.base import SshMover, adapt_progress, makedirs, remove_quietly, rename

if TYPE_CHECKING:
    from scp import SCPClient

    from trollmoves_ssh.connection import SshConnection


class ScpMover(SshMover):
    """Upload and download with the SCP protocol (``scp -t`` / ``scp -f`` on the server).

    Unlike upstream, missing remote directories are created and the upload is atomic: the
    file is sent under a hidden temporary name and renamed afterwards. Directory creation,
    renaming and deletion use the SFTP subsystem of the same connection, or ``mkdir -p`` /
    ``mv`` / ``rm`` commands where the server has none.
    """

    NAME = "scp"
    SCHEMES = ("scp",)

    def _put(self, local_path: str, target: Location, progress: ProgressCallback | None) -> None:
        self._on_connection(target, lambda conn: self._upload(conn, local_path, target.path, progress))

    def _get(self, source: Location, local_path: str, progress: ProgressCallback | None) -> None:
        self._on_connection(source, lambda conn: self._scp(
            conn, progress, lambda client: client.get(source.path, local_path)))

    def _upload(self, conn: SshConnection, local_path: str, final: str, progress: ProgressCallback | None) -> None:
        makedirs(conn, posixpath.dirname(final))
        temp = self.temporary_name(final)
        try:
            self._scp(conn, progress, lambda client: client.put(local_path, temp))
            rename(conn, temp, final)
        except BaseException:
            remove_quietly(conn, temp)
            raise

    def _scp(self, conn: SshConnection, progress: ProgressCallback | None,
             action: Callable[[SCPClient], None]) -> None:
        from scp import SCPClient, SCPException

        update = adapt_progress(progress)
        client = SCPClient(conn.transport, buff_size=self.options.block_size,
                           socket_timeout=self.options.transfer_timeout,
                           progress=(lambda _name, _size, sent: update(sent)) if update else None)
        try:
            action(client)
        except SCPException as err:
            _close_channel(client)
            if "timeout" in str(err):
                raise TimeoutError(f"SCP transfer stalled for {self.options.transfer_timeout:g} s") from err
            raise OSError(str(err).strip()) from err
        except BaseException:
            _close_channel(client)  # abandon the transfer without waiting for the remote scp
            raise


def _close_channel(client: SCPClient) -> None:
    if client.channel is not None:
        client.channel.close()
