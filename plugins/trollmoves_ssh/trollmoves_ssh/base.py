"""What the SFTP and SCP movers share: options, the connection pool, remote file chores.

paramiko is imported on first use, not when the plugin registers its movers, so that
``trollmoves`` starts fast when no SSH transfer is asked for.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from trollmoves_core.mover import Mover, ProgressCallback
from trollmoves_core.uri import Location
from trollmoves_ssh.options import SshOptions

if TYPE_CHECKING:
    from trollmoves_ssh.connection import SshConnection, SshSessions

LOG = logging.getLogger(__name__)

T = TypeVar("T")


class SshMover(Mover):
    """Base of the SSH movers; see :class:`~trollmoves_ssh.options.SshOptions` for the parameters.

    Upstream's ``num_ssh_retries`` is honoured as the number of attempts when ``retries`` is
    not given.
    """

    def __init__(self, connection_params: Mapping[str, Any] | None = None) -> None:
        params = dict(connection_params or {})
        if "retries" not in params and "num_ssh_retries" in params:
            params["retries"] = params["num_ssh_retries"]
        super().__init__(params)
        self.options = SshOptions.from_params(self.params)
        self._sessions: SshSessions | None = None

    def close(self) -> None:
        if self._sessions is not None:
            self._sessions.close()

    def _on_connection(self, location: Location, action: Callable[[SshConnection], T]) -> T:
        if self._sessions is None:
            from trollmoves_ssh.connection import SshSessions

            self._sessions = SshSessions(self.options, self.idle_timeout)
        return self._sessions.run(self.connection_key(location), location, action)

    def _delete(self, location: Location) -> None:
        self._on_connection(location, lambda conn: remove(conn, location.path))


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
    """Best-effort removal of a partial upload; logs instead of raising."""
    if not conn.is_alive():
        LOG.warning("Could not remove partial upload %s on %s: connection lost", path, conn.endpoint)
        return
    try:
        remove(conn, path)
    except FileNotFoundError:
        pass
    except Exception as err:
        LOG.warning("Could not remove partial upload %s on %s: %s", path, conn.endpoint, err)


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
