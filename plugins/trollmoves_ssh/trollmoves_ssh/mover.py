"""The ``sftp://`` (alias ``ssh://``) and ``scp://`` movers, and what they share.

Both run on pooled paramiko connections (:mod:`trollmoves_ssh.connection`) and upload
atomically: to a hidden temporary name beside the target, then renamed. paramiko and scp are
imported on first use, not when the plugin registers its movers, so that ``trollmoves``
starts fast when no SSH transfer is asked for.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from trollmoves_core.bwlimit import limited
from trollmoves_core.checksum import Digest, Hasher, HashingReader
from trollmoves_core.mover import Mover, ProgressCallback
from trollmoves_core.uri import Location
from trollmoves_ssh.options import SshOptions

if TYPE_CHECKING:
    from paramiko import SFTPFile
    from scp import SCPClient

    from trollmoves_ssh.connection import SshConnection, SshSessions

LOG = logging.getLogger(__name__)

T = TypeVar("T")


MAX_BLOCK = 255 * 1024
"""OpenSSH's sftp-server reads and writes at most this much per request (261120 bytes)."""

PREFETCH_REQUESTS = 64
"""Read requests in flight during a download (8 MiB of the 16 MiB window at the default block size)."""

SPARE_NAME = "trollmoves"
"""Named so, hidden (``.trollmoves.<token>.part``), is the temporary file opened ahead for the next upload."""

LIMITED_WINDOW = 4
"""Blocks read ahead at a time during a bandwidth limited download (a prefetch of the whole file
would fetch it at full speed and pay for it afterwards)."""


class SshMover(Mover):
    """Base of the SSH movers; see :class:`~trollmoves_ssh.options.SshOptions` for the parameters.

    Upstream's ``num_ssh_retries`` is honoured as the number of attempts when ``retries`` is
    not given.
    """

    BACKUP_HOSTS = True

    def __init__(self, connection_params: Mapping[str, Any] | None = None) -> None:
        params = dict(connection_params or {})
        if "retries" not in params and "num_ssh_retries" in params:
            params["retries"] = params["num_ssh_retries"]
        super().__init__(params)
        self.options = SshOptions.from_params(self.params)
        self._sessions: SshSessions | None = None
        self._sessions_lock = threading.Lock()

    def close(self) -> None:
        if self._sessions is not None:
            self._sessions.close()

    def _on_connection(self, location: Location, action: Callable[[SshConnection], T]) -> T:
        return self._pooled().run(self.connection_key(location), location, action)

    def _pooled(self) -> SshSessions:
        """The connection pool, made on first use: concurrent first pushes must share one, or each
        keeps a connection of its own that nothing reuses."""
        with self._sessions_lock:
            if self._sessions is None:
                from trollmoves_ssh.connection import SshSessions

                self._sessions = SshSessions(self.options, self.idle_timeout)
            return self._sessions

    def _delete(self, location: Location) -> None:
        self._on_connection(location, lambda conn: remove(conn, location.path))


class SftpMover(SshMover):
    """Upload and download over SFTP, on pooled paramiko connections.

    An upload goes to a hidden temporary name in the target directory (created if missing),
    in pipelined writes of ``block_size`` bytes (at most 255 KiB), and is then renamed with ``posix-rename``: readers
    see the whole file or nothing. With ``open_ahead`` (the default) the rename opens the next
    upload's temporary file in the same directory on the same connection (it waits there, empty,
    until an upload into that directory takes it, or the connection is idle for two seconds or
    closes and deletes it).
    ``ssh://`` URIs are served the same way (upstream announces files as ``ssh://host/path``).
    """

    NAME = "sftp"
    SCHEMES = ("sftp", "ssh")

    def _put(self, local_path: str, target: Location, progress: ProgressCallback | None) -> None:
        self._put_verified(local_path, target, progress, None)

    def _put_verified(self, local_path: str, target: Location, progress: ProgressCallback | None,
                      expected: Digest | None) -> None:
        """The data is hashed as it is sent and checked, with the stored size, before the rename."""
        self._on_connection(target, lambda conn: self._upload(conn, local_path, target.path, progress, expected))

    def _get(self, source: Location, local_path: str, progress: ProgressCallback | None) -> None:
        self._on_connection(source, lambda conn: self._download(conn, source.path, local_path, progress))

    def _size(self, location: Location) -> int | None:
        return self._on_connection(location, lambda conn: conn.sftp().stat(location.path).st_size)

    def _upload(self, conn: SshConnection, local_path: str, final: str, progress: ProgressCallback | None,
                expected: Digest | None = None) -> None:
        """Two round trips when the last upload on ``conn`` went to the same directory: write + size +
        close into the temporary file it opened ahead, then rename (opening the next one meanwhile);
        three otherwise (open first, creating the directory only if that fails for want of it)."""
        update = adapt_progress(progress)  # sent again, the bytes of a second attempt are counted once
        while not self._upload_once(conn, local_path, final, update, expected):
            pass

    def _upload_once(self, conn: SshConnection, local_path: str, final: str, update: Callable[[int], None] | None,
                     expected: Digest | None) -> bool:
        """One attempt of :meth:`_upload`; False when the file opened ahead vanished before its
        rename (a clean-up of hidden files, say): then the next attempt makes a new one."""
        from trollmoves_ssh.pipeline import write_file

        hasher = Hasher(expected.method if expected is not None else None)
        position = 0

        def sent(data: bytes) -> None:
            nonlocal position
            hasher.update(data)
            position += len(data)
            if update:
                update(position)

        conn.remove_litter()
        with open(local_path, "rb", buffering=0) as source:
            temp, handle = self._temporary_file(conn, final)
            ahead = handle is not None
            try:
                if handle is None:
                    handle = _create(conn, temp)
                written = write_file(conn.sftp(), handle, source, min(self.options.block_size, MAX_BLOCK), sent)
                sent_digest = hasher.digest()
                if expected is not None:
                    self.check_source(sent_digest, expected)
                    self.check_written(Digest(written), Digest(expected.size), f"sftp://{conn.endpoint}{final}")
                if written != sent_digest.size:
                    raise OSError(f"the server stored {written} of {sent_digest.size} bytes")
                self._rename(conn, temp, final)
                return True
            except FileNotFoundError:
                if not ahead:
                    remove_quietly(conn, temp)
                    raise
            except BaseException:
                remove_quietly(conn, temp)
                raise
        LOG.debug("%s on %s vanished before its rename; uploading again", temp, conn.endpoint)
        return False

    def _temporary_file(self, conn: SshConnection, final: str) -> tuple[str, bytes | None]:
        """The temporary name to upload ``final`` to, with its handle when it was opened ahead."""
        spare, conn.spare = conn.spare, None
        if spare is not None:
            try:
                if spare.directory == posixpath.dirname(final) and (handle := spare.handle()) is not None:
                    return spare.path, handle
                spare.discard(wait=False)
            except BaseException:  # the session was lost: the file may exist, for the next connection to delete
                conn.litter.append(spare.path)
                raise
        return self.temporary_name(final), None

    def _rename(self, conn: SshConnection, temp: str, final: str) -> None:
        """Rename ``temp`` to ``final``, opening the next upload's temporary file beside it meanwhile
        (``open_ahead``)."""
        from trollmoves_ssh.connection import is_server_status
        from trollmoves_ssh.pipeline import rename as rename_opening

        ahead = self.temporary_name(posixpath.join(posixpath.dirname(final), SPARE_NAME)) \
            if self.options.open_ahead else None
        try:
            conn.spare = rename_opening(conn.sftp(), temp, final, ahead)
        except OSError as err:
            if not is_server_status(err):
                _left_over(conn, ahead)
                raise
            if err.errno is not None:  # a real failure (no such file, permission), not "unsupported"
                raise
            rename(conn, temp, final)
        except BaseException:
            _left_over(conn, ahead)
            raise

    def _download(self, conn: SshConnection, remote: str, local_path: str, progress: ProgressCallback | None) -> None:
        sftp = conn.sftp()
        block = min(self.options.block_size, MAX_BLOCK)
        with sftp.open(remote, "rb", bufsize=block) as handle:
            size = handle.stat().st_size
            handle.MAX_REQUEST_SIZE = block
            received = 0
            with open(local_path, "wb") as out:
                for data in _blocks(handle, size, block, windowed=limited(progress)):
                    out.write(data)
                    received += len(data)
                    if progress:
                        progress(len(data))
        if received != size:
            raise OSError(f"received {received} of {size} bytes of {remote}")


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

    def _put_verified(self, local_path: str, target: Location, progress: ProgressCallback | None,
                      expected: Digest) -> None:
        """The data is hashed as it is sent and checked, with the stored size where SFTP can
        tell it, before the rename."""
        self._on_connection(target, lambda conn: self._upload(conn, local_path, target.path, progress, expected))

    def _get(self, source: Location, local_path: str, progress: ProgressCallback | None) -> None:
        self._on_connection(source, lambda conn: self._scp(
            conn, progress, lambda client: client.get(source.path, local_path)))

    def _upload(self, conn: SshConnection, local_path: str, final: str, progress: ProgressCallback | None,
                expected: Digest | None = None) -> None:
        makedirs(conn, posixpath.dirname(final))
        temp = self.temporary_name(final)
        try:
            if expected is None:
                self._scp(conn, progress, lambda client: client.put(local_path, temp))
            else:
                with open(local_path, "rb") as raw:
                    reader = HashingReader(raw, expected.method)
                    size = os.fstat(raw.fileno()).st_size
                    self._scp(conn, progress, lambda client: client.putfo(reader, temp, size=size))
                self.check_source(reader.hasher.digest(), expected)
                if (sftp := _sftp_or_none(conn)) is not None:
                    self.check_written(Digest(sftp.stat(temp).st_size), Digest(expected.size),
                                       f"scp://{conn.endpoint}{final}")
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


def _blocks(handle: SFTPFile, size: int, block: int, *, windowed: bool) -> Iterator[bytes]:
    """The remote file's data in blocks: all of it prefetched, or ``windowed`` (under a bandwidth
    limit) :data:`LIMITED_WINDOW` blocks at a time, the next window asked for once the last is taken."""
    if not windowed:
        handle.prefetch(size, max_concurrent_requests=PREFETCH_REQUESTS)
        while data := handle.read(block):
            yield data
        return
    for start in range(0, size, block * LIMITED_WINDOW):
        end = min(size, start + block * LIMITED_WINDOW)
        yield from handle.readv([(offset, min(block, end - offset)) for offset in range(start, end, block)])


def adapt_progress(progress: ProgressCallback | None) -> Callable[[int], None] | None:
    """Turn a running byte total (what paramiko and scp report) into the deltas we promise."""
    if progress is None:
        return None
    done = 0

    def update(total: int) -> None:
        nonlocal done
        if total > done:
            step, done = total - done, total
            progress(step)

    return update


def makedirs(conn: SshConnection, directory: str) -> None:
    """Create ``directory`` and its missing parents, over SFTP or else ``mkdir -p``."""
    if not directory or directory == "/":
        return
    sftp = _sftp_or_none(conn)
    if sftp is None:
        conn.run(["mkdir", "-p", "--", directory])
        return
    missing = []
    path = directory
    while path not in ("", "/"):
        try:
            sftp.stat(path)
            break
        except FileNotFoundError:
            missing.append(path)
            path = posixpath.dirname(path)
    for path in reversed(missing):
        try:
            sftp.mkdir(path)
        except OSError:
            sftp.stat(path)  # created meanwhile by someone else: fine; otherwise this raises


def rename(conn: SshConnection, source: str, dest: str) -> None:
    """Replace ``dest`` by ``source`` atomically (POSIX rename) where the server allows."""
    sftp = _sftp_or_none(conn)
    if sftp is None:
        conn.run(["mv", "-f", "--", source, dest])
        return
    try:
        sftp.posix_rename(source, dest)
    except OSError as err:
        if err.errno is not None:  # a real failure (no such file, permission), not "unsupported"
            raise
        LOG.debug("posix-rename unsupported (%s); falling back to remove and rename", err)
        with contextlib.suppress(FileNotFoundError):
            sftp.remove(dest)
        sftp.rename(source, dest)


def remove(conn: SshConnection, path: str) -> None:
    """Delete the remote file ``path``."""
    sftp = _sftp_or_none(conn)
    if sftp is None:
        conn.run(["rm", "--", path])
    else:
        sftp.remove(path)


def remove_quietly(conn: SshConnection, path: str) -> None:
    """Best-effort removal of a partial upload; logs instead of raising. When the connection is
    lost, the path is left to the next connection to the host (``litter``)."""
    if conn.is_alive():
        try:
            remove(conn, path)
            return
        except FileNotFoundError:
            return
        except (EOFError, ConnectionError):
            pass
        except Exception as err:
            LOG.warning("Could not remove partial upload %s on %s: %s", path, conn.endpoint,
                        err or type(err).__name__)
            return
    LOG.debug("Partial upload %s on %s left to the next connection: connection lost", path, conn.endpoint)
    conn.litter.append(path)


def _left_over(conn: SshConnection, spare: str | None) -> None:
    """The session was lost while ``spare`` was being opened: the next connection deletes it."""
    if spare is not None:
        conn.litter.append(spare)


def _sftp_or_none(conn: SshConnection) -> Any:
    """The SFTP session, or None when the server has no SFTP subsystem (then shell commands do)."""
    if conn.no_sftp:
        return None
    from paramiko import SSHException

    try:
        return conn.sftp()
    except SSHException as err:
        if not conn.is_alive():
            raise
        LOG.info("No SFTP subsystem on %s (%s); using shell commands", conn.endpoint, err)
        conn.no_sftp = True
        return None


def _create(conn: SshConnection, path: str) -> bytes:
    """Open the new remote file ``path`` for writing, creating missing directories; its handle."""
    from trollmoves_ssh.pipeline import open_for_writing

    sftp = conn.sftp()
    try:
        return open_for_writing(sftp, path)
    except FileNotFoundError:
        makedirs(conn, posixpath.dirname(path))
        return open_for_writing(sftp, path)


def _close_channel(client: SCPClient) -> None:
    if client.channel is not None:
        client.channel.close()
