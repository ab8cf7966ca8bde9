"""The ``ftp://`` and ``ftps://`` mover, on the standard library's :mod:`ftplib`."""

from __future__ import annotations

import contextlib
import ftplib
import logging
import netrc
import posixpath
import select
import ssl
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from trollmoves_core.checksum import Digest, HashingReader
from trollmoves_core.exceptions import TransferError
from trollmoves_core.mover import Mover, ProgressCallback
from trollmoves_core.pool import ConnectionPool
from trollmoves_core.uri import Location
from trollmoves_ftp.errors import classify, step
from trollmoves_ftp.options import FtpOptions

LOG = logging.getLogger(__name__)

BLOCKSIZE = 1024 * 1024
"""Bytes per read/write on the data connection; large blocks keep loopback near 1 GB/s."""

_QUIT_TIMEOUT = 2.0


@dataclass
class _Session:
    """One logged-in control connection and the directories known to exist on it."""

    ftp: ftplib.FTP
    known_dirs: set[str] = field(default_factory=set)


class FtpMover(Mover):
    """Deliver to and fetch from FTP servers; ``ftps://`` is explicit TLS (``AUTH TLS``).

    Credentials: the URI, then the ``username``/``password`` connection parameters, then
    ``~/.netrc``, then anonymous. Other parameters: those of
    :class:`~trollmoves_ftp.options.FtpOptions`, ``connection_uptime``, ``retries``, ``retry_delay``. Uploads go
    to a hidden temporary name and are renamed (``RNFR``/``RNTO``), so the final name is
    never partial. 4xx replies and network errors are transient; 5xx replies and certificate
    errors are not. Operator's reference: ``docs/movers/ftp.md``.
    """

    NAME = "ftp"
    SCHEMES = ("ftp", "ftps")
    BACKUP_HOSTS = True

    def __init__(self, connection_params: Mapping[str, Any] | None = None) -> None:
        super().__init__(connection_params)
        self.options = FtpOptions.from_params(self.params)
        self._endpoints: dict[Hashable, Location] = {}
        self._pool: ConnectionPool[_Session] = ConnectionPool(
            self._connect, _close, _is_alive, idle_timeout=self.idle_timeout)

    @property
    def passive(self) -> bool:
        """True for passive data connections (``PASV``), False for active ones (``PORT``)."""
        return self.options.passive

    @property
    def connections_opened(self) -> int:
        """How many logins this mover made so far."""
        return self._pool.opened

    def close(self) -> None:
        """Log out of every pooled connection."""
        self._pool.close_all()

    # -- protocol ----------------------------------------------------------------------

    def _put(self, local_path: str, target: Location, progress: ProgressCallback | None) -> None:
        self._put_verified(local_path, target, progress, None)

    def _put_verified(self, local_path: str, target: Location, progress: ProgressCallback | None,
                      expected: Digest | None) -> None:
        """The data is hashed as it is sent; before the rename, the hash is checked and the
        server asked for the stored size (``SIZE``)."""
        directory = posixpath.dirname(target.path)
        temporary = self.temporary_name(target.path)
        started = False
        try:
            with self._session(target) as session:
                remembered = directory in session.known_dirs
                self._make_dirs(session, directory)
                started = True
                method = expected.method if expected is not None else None
                try:
                    with open(local_path, "rb") as raw:
                        source = HashingReader(raw, method)
                        _store(session.ftp, temporary, source, progress)
                except ftplib.error_perm:
                    if not remembered:
                        raise
                    # Someone may have removed the directory since this session last saw it.
                    session.known_dirs.clear()
                    self._make_dirs(session, directory)
                    with open(local_path, "rb") as raw:
                        source = HashingReader(raw, method)
                        _store(session.ftp, temporary, source, progress)
                if expected is not None:
                    self.check_source(source.hasher.digest(), expected)
                    try:
                        stored = session.ftp.size(temporary)
                    except ftplib.error_perm:  # SIZE unsupported: the size cannot be checked
                        stored = None
                    if stored is not None:
                        self.check_written(Digest(stored), Digest(expected.size), target.geturi())
                _replace(session.ftp, temporary, target.path)
        except Exception:
            if started:
                self._remove_quietly(target, temporary)
            raise

    def _get(self, source: Location, local_path: str, progress: ProgressCallback | None) -> None:
        with self._session(source) as session, open(local_path, "wb") as sink:
            _retrieve(session.ftp, source.path, sink, progress)

    def _delete(self, location: Location) -> None:
        with self._session(location) as session, step(f"DELE {location.path}"):
            session.ftp.delete(location.path)

    def _size(self, location: Location) -> int | None:
        with self._session(location) as session:
            return session.ftp.size(location.path)

    def _classify(self, err: Exception) -> TransferError | None:
        return classify(err)

    # -- connections -------------------------------------------------------------------

    @contextlib.contextmanager
    def _session(self, location: Location) -> Iterator[_Session]:
        """A pooled session; one whose command got a clean error reply stays in the pool."""
        key = self.connection_key(location)
        self._endpoints[key] = location
        refused: ftplib.Error | None = None
        with self._pool.connection(key) as session:
            try:
                yield session
            except (ftplib.error_perm, ftplib.error_temp) as err:
                refused = err  # the reply was read in full: the control connection is in step
        if refused is not None:
            raise refused

    def _connect(self, key: Hashable) -> _Session:
        location = self._endpoints[key]
        user, password = self._credentials(location)
        ftp: ftplib.FTP
        if location.scheme == "ftps":
            ftp = ftplib.FTP_TLS(context=self._tls_context(), timeout=self.options.timeout)
        else:
            ftp = ftplib.FTP(timeout=self.options.timeout)
        try:
            ftp.connect(location.host, location.port or 21)
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.auth()
            try:
                with step(f"login as {user or 'anonymous'}"):
                    ftp.login(user or "", password or "")
            except ftplib.error_perm as err:
                if not isinstance(ftp, ftplib.FTP_TLS) and ("TLS" in str(err) or "SSL" in str(err)):
                    err.hint = "the server requires TLS: use an ftps:// URI"  # type: ignore[attr-defined]
                raise
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
            ftp.set_pasv(self.options.passive)
            ftp.voidcmd("TYPE I")
        except BaseException:
            ftp.close()
            raise
        LOG.debug("Logged in to %s://%s as %s (%s mode)", location.scheme, location.netloc(),
                  user or "anonymous", "passive" if self.options.passive else "active")
        return _Session(ftp)

    def _credentials(self, location: Location) -> tuple[str | None, str | None]:
        user, password = self.options.credentials_for(location)
        if password is None:
            entry = _netrc_entry(location.host)
            if entry is not None and (user is None or entry[0] == user):
                user, password = entry
        return user, password

    def _tls_context(self) -> ssl.SSLContext:
        if not self.options.verify:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return ssl.create_default_context(cafile=self.options.ca_file)

    # -- helpers -----------------------------------------------------------------------

    def _make_dirs(self, session: _Session, directory: str) -> None:
        """Create ``directory`` and its missing parents, like ``mkdir -p``."""
        if directory in ("", "/") or directory in session.known_dirs:
            return
        ftp = session.ftp
        try:
            ftp.cwd(directory)
        except ftplib.error_perm:
            parts = [p for p in directory.split("/") if p]
            prefix = "/" if directory.startswith("/") else ""
            for i in range(len(parts)):
                current = prefix + "/".join(parts[: i + 1])
                if current in session.known_dirs:
                    continue
                try:
                    with step(f"MKD {current}"):
                        ftp.mkd(current)
                except ftplib.error_perm as refused:
                    try:  # it may exist already; if we cannot enter it either, report the MKD reply
                        ftp.cwd(current)
                    except ftplib.error_perm:
                        raise refused from None
                session.known_dirs.add(current)
        session.known_dirs.add(directory)

    def _remove_quietly(self, target: Location, temporary: str) -> None:
        """Best effort: drop a failed upload's temporary file, on a fresh connection."""
        try:
            with self._session(target) as session:
                session.ftp.delete(temporary)
        except Exception as err:
            LOG.debug("Could not remove %s on %s: %s", temporary, target.netloc(), err)


def _store(ftp: ftplib.FTP, path: str, source: Any, progress: ProgressCallback | None) -> None:
    with step(f"STOR {path}"):
        with ftp.transfercmd(f"STOR {path}") as conn:
            while block := source.read(BLOCKSIZE):
                conn.sendall(block)
                if progress:
                    progress(len(block))
            if isinstance(conn, ssl.SSLSocket):
                conn.unwrap()  # a clean TLS close, or the server takes the upload for truncated
        ftp.voidresp()


def _retrieve(ftp: ftplib.FTP, path: str, sink: Any, progress: ProgressCallback | None) -> None:
    with step(f"RETR {path}"):
        with ftp.transfercmd(f"RETR {path}") as conn:
            while block := conn.recv(BLOCKSIZE):
                sink.write(block)
                if progress:
                    progress(len(block))
            if isinstance(conn, ssl.SSLSocket):
                conn.unwrap()
        ftp.voidresp()


def _replace(ftp: ftplib.FTP, temporary: str, final: str) -> None:
    """Rename ``temporary`` to ``final``, replacing ``final`` if the server will not."""
    with step(f"rename {temporary} to {final}"):
        try:
            _rename(ftp, temporary, final)
            return
        except ftplib.error_perm:
            if not _exists(ftp, final):
                raise
        LOG.debug("Server refused to rename onto existing %s; deleting it first", final)
        ftp.delete(final)
        ftp.rename(temporary, final)


def _rename(ftp: ftplib.FTP, source: str, dest: str) -> None:
    """``RNFR`` and ``RNTO`` sent together, their replies read after: one round trip. A refused
    ``RNFR`` makes the server refuse the ``RNTO`` too (bad sequence); the ``RNFR`` reply is raised."""
    ftp.putcmd(f"RNFR {source}")
    ftp.putcmd(f"RNTO {dest}")
    try:
        reply = ftp.getresp()
        if not reply.startswith("3"):
            raise ftplib.error_reply(reply)
    except ftplib.Error:
        with contextlib.suppress(ftplib.Error):
            ftp.getresp()  # the RNTO's reply: keep the control connection in step
        raise
    ftp.voidresp()


def _exists(ftp: ftplib.FTP, path: str) -> bool:
    try:
        ftp.size(path)
    except ftplib.error_perm:
        return False
    return True


def _close(session: _Session) -> None:
    ftp = session.ftp
    try:
        if ftp.sock is not None:
            ftp.sock.settimeout(min(_QUIT_TIMEOUT, ftp.timeout or _QUIT_TIMEOUT))
            ftp.quit()
    finally:
        ftp.close()


def _is_alive(session: _Session) -> bool:
    """An idle control connection has nothing to read unless the server closed it or announced
    it would (``421``): checked without a round trip."""
    sock = session.ftp.sock
    if sock is None:
        return False
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return False
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable


def _netrc_entry(host: str) -> tuple[str, str] | None:
    """``(login, password)`` from ``~/.netrc`` for ``host``, or None."""
    try:
        found = netrc.netrc().authenticators(host)
    except FileNotFoundError:
        return None
    except (OSError, netrc.NetrcParseError) as err:
        LOG.warning("Ignoring ~/.netrc: %s", err)
        return None
    if not found:
        return None
    login, _account, password = found
    return login, password
