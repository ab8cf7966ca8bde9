"""The ``sftp://`` (alias ``ssh://``) mover."""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Any

from trollmoves_core.mover import ProgressCallback
from trollmoves_core.uri import Location
from trollmoves_ssh.base import SshMover, makedirs, remove_quietly, rename

if TYPE_CHECKING:
    from trollmoves_ssh.connection import SshConnection

MAX_BLOCK = 255 * 1024
"""OpenSSH's sftp-server reads and writes at most this much per request (261120 bytes)."""

PREFETCH_REQUESTS = 64
"""Read requests in flight during a download (8 MiB of the 16 MiB window at the default block size)."""


class SftpMover(SshMover):
    """Upload and download over SFTP, on pooled paramiko connections.

    An upload goes to a hidden temporary name in the target directory (created if missing),
    in pipelined writes of ``block_size`` bytes (at most 255 KiB), and is then renamed with ``posix-rename``: readers
    see the whole file or nothing. ``ssh://`` URIs are served the same way (upstream
    announces files as ``ssh://host/path``).
    """

    NAME = "sftp"
    SCHEMES = ("sftp", "ssh")

    def _put(self, local_path: str, target: Location, progress: ProgressCallback | None) -> None:
        self._on_connection(target, lambda conn: self._upload(conn, local_path, target.path, progress))

    def _get(self, source: Location, local_path: str, progress: ProgressCallback | None) -> None:
        self._on_connection(source, lambda conn: self._download(conn, source.path, local_path, progress))

    def _upload(self, conn: SshConnection, local_path: str, final: str, progress: ProgressCallback | None) -> None:
        sftp = conn.sftp()
        temp = self.temporary_name(final)
        block = min(self.options.block_size, MAX_BLOCK)
        try:
            size = 0
            with open(local_path, "rb", buffering=0) as source, _create(conn, temp) as handle:
                handle.MAX_REQUEST_SIZE = block
                handle.set_pipelined(True)  # errors come back on close, which waits for every reply
                while data := source.read(block):
                    handle.write(data)
                    size += len(data)
                    if progress:
                        progress(len(data))
            written = sftp.stat(temp).st_size
            if written != size:
                raise OSError(f"the server stored {written} of {size} bytes")
            rename(conn, temp, final)
        except BaseException:
            remove_quietly(conn, temp)
            raise

    def _download(self, conn: SshConnection, remote: str, local_path: str, progress: ProgressCallback | None) -> None:
        sftp = conn.sftp()
        block = min(self.options.block_size, MAX_BLOCK)
        with sftp.open(remote, "rb", bufsize=block) as handle:
            size = handle.stat().st_size
            handle.MAX_REQUEST_SIZE = block
            handle.prefetch(size, max_concurrent_requests=PREFETCH_REQUESTS)
            received = 0
            with open(local_path, "wb") as out:
                while data := handle.read(block):
                    out.write(data)
                    received += len(data)
                    if progress:
                        progress(len(data))
        if received != size:
            raise OSError(f"received {received} of {size} bytes of {remote}")


def _create(conn: SshConnection, path: str) -> Any:
    """Open the new remote file ``path`` for writing, creating missing directories."""
    sftp = conn.sftp()
    try:
        return sftp.open(path, "wb", bufsize=0)
    except FileNotFoundError:
        makedirs(conn, posixpath.dirname(path))
        return sftp.open(path, "wb", bufsize=0)
