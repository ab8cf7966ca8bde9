"""The fallback mover: any filesystem fsspec knows, for the schemes no plugin provides.

fsspec (and the implementation a scheme needs, ``gcsfs``, ``adlfs``, ``webdav4``...) is
imported on first use, so registering the plugin stays cheap.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from trollmoves_core.checksum import Digest, HashingReader
from trollmoves_core.exceptions import TransferError
from trollmoves_core.mover import Mover, ProgressCallback
from trollmoves_core.pool import ConnectionPool
from trollmoves_core.uri import Location
from trollmoves_fsspec.errors import classify
from trollmoves_fsspec.options import storage_options

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

LOG = logging.getLogger(__name__)

T = TypeVar("T")

BLOCKSIZE = 1024 * 1024
"""Bytes per read and write while streaming a file."""


class FsspecMover(Mover):
    """Deliver to and fetch from any filesystem fsspec knows, when no plugin claims the scheme.

    The URI is handed to fsspec as it is (``gcs://bucket/key``, ``abfs://container/path``,
    ``webdav://dir/file`` with ``base_url`` among the connection parameters), which are the
    filesystem's storage options (:mod:`trollmoves_fsspec.options`). An upload is written
    under a hidden temporary name, hashed as it is sent, then renamed: a true rename where the
    filesystem has one (local, SFTP, FTP, WebDAV ``MOVE``), a copy and delete where it has not
    (object stores: the final object still appears only once complete). One filesystem
    instance per connection (fsspec's own URL arguments: host, port, user) is pooled and
    dropped after ``connection_uptime`` idle seconds. Operator's reference: ``docs/movers/fsspec.md``.
    """

    NAME = "fsspec"
    SCHEMES = ()
    FALLBACK = True

    def __init__(self, connection_params: Mapping[str, Any] | None = None) -> None:
        super().__init__(connection_params)
        self._locations: dict[Hashable, Location] = {}
        self._pool: ConnectionPool[AbstractFileSystem] = ConnectionPool(
            self._connect, _forget, idle_timeout=self.idle_timeout)

    @classmethod
    def refusal(cls, scheme: str) -> str | None:
        """None when fsspec can serve ``scheme`` here, else why not and what to install."""
        import fsspec
        from fsspec.registry import known_implementations

        try:
            fsspec.get_filesystem_class(scheme)
        except ValueError:
            return f"fsspec knows no {scheme!r} protocol either"
        except ImportError as err:
            return f"fsspec knows it: {install_hint(known_implementations.get(scheme, {}), err)}"
        return None

    @property
    def connections_opened(self) -> int:
        """How many filesystem instances this mover created so far."""
        return self._pool.opened

    def connection_key(self, location: Location) -> Hashable:  # type: ignore[override]
        """One filesystem per scheme and the arguments fsspec reads from the URL (host, port,
        user, password: hashed, as fsspec's tokens are)."""
        from fsspec.utils import tokenize

        return location.scheme, tokenize(sorted(self._url_kwargs(location).items()))

    def close(self) -> None:
        self._pool.close_all()

    # -- protocol ----------------------------------------------------------------------

    def _put(self, local_path: str, target: Location, progress: ProgressCallback | None) -> None:
        self._put_verified(local_path, target, progress, None)

    def _put_verified(self, local_path: str, target: Location, progress: ProgressCallback | None,
                      expected: Digest | None) -> None:
        """Hashed as sent; before the rename the hash is checked and the stored size asked for."""
        path = self._path(target)
        temporary = self.temporary_name(path)

        def upload(fs: AbstractFileSystem) -> None:
            try:
                try:
                    source = _upload(fs, local_path, temporary, progress, expected)
                except FileNotFoundError:  # a filesystem with real directories, and this one missing
                    fs.makedirs(posixpath.dirname(temporary), exist_ok=True)
                    source = _upload(fs, local_path, temporary, progress, expected)
                if expected is not None:
                    self.check_source(source.hasher.digest(), expected)
                    self.check_written(Digest(int(fs.info(temporary)["size"])), Digest(expected.size),
                                       target.geturi())
                _rename(fs, temporary, path)
            except BaseException:
                with contextlib.suppress(Exception):
                    fs.rm_file(temporary)
                raise

        self._using(target, upload)

    def _get(self, source: Location, local_path: str, progress: ProgressCallback | None) -> None:
        path = self._path(source)

        def download(fs: AbstractFileSystem) -> None:
            with fs.open(path, "rb") as remote, open(local_path, "wb") as sink:
                while chunk := remote.read(BLOCKSIZE):
                    sink.write(chunk)
                    if progress:
                        progress(len(chunk))

        self._using(source, download)

    def _size(self, location: Location) -> int | None:
        info = self._using(location, lambda fs: fs.info(self._path(location)))
        return int(info["size"]) if info.get("type") == "file" and info.get("size") is not None else None

    def _delete(self, location: Location) -> None:
        self._using(location, lambda fs: fs.rm_file(self._path(location)))

    def _classify(self, err: Exception) -> TransferError | None:
        return classify(err)

    # -- filesystems -------------------------------------------------------------------

    def _using(self, location: Location, action: Callable[[AbstractFileSystem], T]) -> T:
        """Run ``action`` with a pooled filesystem; failures become :class:`FsspecError`\\ s."""
        key = self.connection_key(location)
        self._locations[key] = location
        try:
            with self._pool.connection(key) as fs:
                return action(fs)
        except TransferError:
            raise
        except Exception as err:
            raise classify(err) from err

    def _connect(self, key: Hashable) -> AbstractFileSystem:
        import fsspec

        location = self._locations[key]
        cls = fsspec.get_filesystem_class(location.scheme)
        options = {**storage_options(self.params, cls), **self._url_kwargs(location)}
        LOG.debug("New %s filesystem for %s://", cls.__name__, location.scheme)
        return cls(**options, skip_instance_cache=True)  # the pool owns its instances

    @staticmethod
    def _url_kwargs(location: Location) -> dict[str, Any]:
        """What fsspec reads from the URL itself (host, port, user, password for FTP/SFTP/SMB)."""
        import fsspec

        cls = fsspec.get_filesystem_class(location.scheme)
        return cls._get_kwargs_from_urls(_url(replace(location, path="/")))

    @staticmethod
    def _path(location: Location) -> str:
        """The filesystem's own path for ``location`` (fsspec strips the protocol its way)."""
        import fsspec

        return fsspec.get_filesystem_class(location.scheme)._strip_protocol(_url(location))


def install_hint(implementation: Mapping[str, str], err: BaseException) -> str:
    """``pip install PACKAGE`` for an fsspec implementation that failed to import.

    The packages come from the registry's ``err`` text when it quotes them (``requires
    "paramiko"``), else from the implementing class's top-level module (``gcsfs``); failing
    both, the registry's text (or the import error) is said as it is.
    """
    hint = implementation.get("err", "")
    quoted = re.findall(r'"+([A-Za-z][\w.\[\]-]*)"', hint)
    if quoted:
        return "pip install " + " ".join(dict.fromkeys(quoted))
    module = implementation.get("class", "").split(".", 1)[0]
    if module and module != "fsspec":
        return f"pip install {module}"
    return " ".join((hint or str(err)).split())


def _url(location: Location) -> str:
    """``location`` as fsspec takes it: with its password, without a query."""
    return replace(location, query={}).geturi(with_password=True)


def _upload(fs: AbstractFileSystem, local_path: str, path: str, progress: ProgressCallback | None,
            expected: Digest | None) -> HashingReader:
    """Stream ``local_path`` into ``path``; an interrupted upload is discarded, not committed."""
    with open(local_path, "rb") as raw:
        source = HashingReader(raw, expected.method if expected is not None else None)
        remote = fs.open(path, "wb")
        try:
            while chunk := source.read(BLOCKSIZE):
                remote.write(chunk)
                if progress:
                    progress(len(chunk))
            remote.close()  # commits: the upload happens here for some implementations
        except BaseException:
            discard = getattr(remote, "discard", None)
            with contextlib.suppress(Exception):
                discard() if discard is not None else remote.close()
            raise
    return source


def _rename(fs: AbstractFileSystem, source: str, target: str) -> None:
    """``fs.mv``, except where the implementation's ``mv`` copies though the protocol renames."""
    native = NATIVE_RENAMES.get(f"{type(fs).__module__}.{type(fs).__qualname__}")
    if native is not None:
        native(fs, source, target)
    else:
        fs.mv(source, target)


def _webdav_move(fs: Any, source: str, target: str) -> None:
    # webdav4's mv of a file is COPY then DELETE; a WebDAV MOVE is one rename on the server
    from webdav4.fsspec import translate_exceptions

    with translate_exceptions():
        fs.client.move(source, target, overwrite=True)


NATIVE_RENAMES: dict[str, Callable[[Any, str, str], None]] = {
    "webdav4.fsspec.WebdavFileSystem": _webdav_move,
}
"""Filesystem classes whose ``mv`` is not the protocol's rename, and the rename to use instead."""


def _forget(fs: AbstractFileSystem) -> None:
    """fsspec has no common close: an idle filesystem is dropped, its sockets closed when collected."""
