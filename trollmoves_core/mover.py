"""The mover contract every transfer plugin implements.

A mover moves one file at a time between the local disk and one kind of URI. Subclasses
declare ``NAME`` and ``SCHEMES`` and implement three protocol methods; the base class gives
every mover the same public behaviour:

* ``put(local_path, dest_uri)`` uploads. A destination ending in ``/`` keeps the local file
  name, otherwise its last part is the new name. The upload is atomic where the protocol
  allows: written under a hidden temporary name beside the target, then renamed, so no
  partial file ever carries the final name.
* ``get(src_uri, local_path)`` downloads, the same way round (``local_path`` may be a
  directory ending in ``/``); the local side is always atomic.
* ``delete(uri)`` removes a remote file.
* ``size(uri)`` is the remote file's size when the protocol tells it cheaply, else None.
* With ``expected`` (a :class:`~trollmoves_core.checksum.Digest`: the size and checksum the
  file was announced with), ``put`` and ``get`` verify: a file that is not what was announced
  never gets its final name, and the failure is a
  :class:`~trollmoves_core.checksum.ChecksumMismatch` naming expected vs found. ``get`` checks
  the downloaded file's size and checksum. ``put`` checks the local file's size first (a file
  changed since its announcement is not sent, and not retried), then whatever the mover's
  :meth:`Mover._put_verified` can check cheaply: the file mover hashes as it copies, FTP and
  SFTP hash as they send and compare the stored size, S3 has the server check the checksum.
  ``put_checked`` also says whether what was checked is the hash of the stored bytes (the file
  mover's copies), which a reader of the destination then need not read back.
* Transient failures (connection refused/reset, timeouts) are retried with exponential
  backoff, ``retries`` attempts in all; authentication and permission errors are not.
* Every failure is a :class:`~trollmoves_core.exceptions.TransferError` whose message names
  the URI without its password, and the cause.
* Connections are reused across calls to the same endpoint and closed after
  ``connection_uptime`` idle seconds (see :class:`~trollmoves_core.pool.ConnectionPool`).

Local paths are ``str`` from ``put``/``get`` down: ``put`` takes any path-like object but
converts it once with ``os.fspath``, ``_put`` and ``_get`` receive ``str`` and ``get`` returns
``str``. Implementations keep to ``os.path`` and ``open()`` on their per-file paths too: Python
3.12's pathlib interns every name it parses and never frees it, so one ``Path`` per distinct
file name grows a long-running process without bound. This holds for every per-file path of
the core and the roles (watchers report ``str`` for the same reason).

Options come from the URI (user, password, port, query) and from ``connection_params``, a
dict of the connection parameters a config or ``-o key=value`` gave.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import secrets
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping
from typing import Any, ClassVar, TypeVar

from trollmoves_core.checksum import ChecksumMismatch, Digest, check, verify_file
from trollmoves_core.config import param_number
from trollmoves_core.exceptions import TransferError
from trollmoves_core.retry import is_transient, with_retries
from trollmoves_core.uri import Location, parse_uri, redact, target_path, temporary_sibling

LOG = logging.getLogger(__name__)

T = TypeVar("T")
_STORED = threading.local()
"""What the last :meth:`Mover.put` in this thread said of its stored bytes (for :meth:`Mover.put_checked`)."""
ProgressCallback = Callable[[int], None]
"""Called with the number of bytes transferred since the previous call, block by block as the data
goes (not once at the end), from the transferring thread. It may block: a bandwidth limit
(:class:`~trollmoves_core.bwlimit.Throttle`) waits in it; bytes that crossed nothing (a hard link)
are reported through :func:`~trollmoves_core.bwlimit.untimed`."""


class Mover(ABC):
    """Base class of all movers; see the module docstring for the contract.

    :param connection_params: protocol options (``connection_uptime``, ``ssh_key_filename``,
        ``endpoint_url``...). Unknown keys are ignored so one dict can serve several movers.
    """

    NAME: ClassVar[str]
    """Short name shown by ``trollmoves plugins``."""
    SCHEMES: ClassVar[tuple[str, ...]]
    """URI schemes this mover serves."""
    BACKUP_HOSTS: ClassVar[bool] = False
    """Whether a URI's host is a server that another host can stand in for: a server's
    ``backup_targets`` fail a push over to them (not for local files, nor for buckets)."""
    FALLBACK: ClassVar[bool] = False
    """Whether this mover also serves schemes no plugin claims, those :meth:`refusal` accepts.
    It is asked only on a miss: a scheme in any plugin's ``SCHEMES``, or one of our own
    distributions' schemes, never reaches it."""

    def __init__(self, connection_params: Mapping[str, Any] | None = None) -> None:
        self.params: dict[str, Any] = dict(connection_params or {})
        self.attempts = int(param_number(self.params, "retries", 3, minimum=1))
        self.retry_delay = param_number(self.params, "retry_delay", 0.5, minimum=0)
        self.idle_timeout = param_number(self.params, "connection_uptime", 30, minimum=0)

    @classmethod
    def refusal(cls, scheme: str) -> str | None:
        """For a ``FALLBACK`` mover: None when it can serve ``scheme``, else why not in a few
        words naming what to install (the core puts it into its "no mover" error)."""
        return None

    # -- public contract -------------------------------------------------------------

    def put(self, local_path: str | os.PathLike[str], dest_uri: str, *,
            progress: ProgressCallback | None = None, expected: Digest | None = None) -> str:
        """Upload ``local_path`` to ``dest_uri``; return the delivered file's URI (no password).

        With ``expected``, the upload is verified as far as the mover can (module docstring).
        """
        local = os.fspath(local_path)
        dest = parse_uri(dest_uri)
        # "s3://bucket" or "ftp://host" has an empty path: that is the root directory.
        target = dest.with_path(target_path(dest.path or ("/" if dest.host else ""), os.path.basename(local)))
        what = f"put {local} to {redact(target.geturi())}"
        if not os.path.isfile(local):
            raise TransferError(f"{what} failed: no such local file")
        stored = False
        if expected is None:
            self._run(what, lambda: self._put(local, target, progress))
        else:
            try:
                self.check_source(Digest(os.path.getsize(local)), Digest(expected.size))
            except ChecksumMismatch as err:
                raise ChecksumMismatch(f"{what} failed: {err}") from None
            stored = bool(self._run(what, lambda: self._put_verified(local, target, progress, expected)))
        LOG.debug("%s done", what)
        _STORED.verified = stored
        return target.geturi()

    def put_checked(self, local_path: str | os.PathLike[str], dest_uri: str, *,
                    progress: ProgressCallback | None = None, expected: Digest | None = None) -> tuple[str, bool]:
        """:meth:`put` (a subclass's too), and whether the bytes the destination stored were hashed
        and found to be ``expected`` (True only when :meth:`_put_verified` says it did): then a
        reader of the destination need not read them back."""
        _STORED.verified = False
        uri = self.put(local_path, dest_uri, progress=progress, expected=expected)
        return uri, _STORED.verified

    def get(self, src_uri: str, local_path: str | os.PathLike[str], *,
            progress: ProgressCallback | None = None, expected: Digest | None = None) -> str:
        """Download ``src_uri`` to ``local_path`` atomically; return the local file's path as a ``str``.

        ``local_path`` names the file, or a directory (existing, or written with a trailing ``/``)
        to keep the remote file name in. Missing directories are created. With ``expected``, a
        download of another size or checksum is discarded and retried (a transient failure).
        """
        source = parse_uri(src_uri)
        local = os.fspath(local_path)
        if os.path.isdir(local):
            local = local.rstrip("/") + "/"
        local = target_path(local, posixpath.basename(source.path.rstrip("/")))
        what = f"get {redact(src_uri)} to {local}"
        if local.endswith("/"):
            raise TransferError(f"{what} failed: the source names no file", transient=False)
        partial = temporary_sibling(local, secrets.token_hex(4))

        def attempt() -> None:
            if parent := os.path.dirname(local):
                os.makedirs(parent, exist_ok=True)
            try:
                self._get(source, partial, progress)
                verify_file(partial, expected, f"downloaded {redact(src_uri)}")
                os.replace(partial, local)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(partial)

        self._run(what, attempt)
        return local

    def size(self, uri: str) -> int | None:
        """The size in bytes of the file at ``uri`` if the protocol can tell cheaply, else None.

        Only a hint (for a progress bar): it is asked once, not retried, and never raises.
        """
        try:
            return self._size(parse_uri(uri))
        except Exception as err:
            LOG.debug("No size for %s: %s", redact(uri), _describe(err))
            return None

    def delete(self, uri: str) -> None:
        """Remove the file at ``uri``."""
        self._run(f"delete {redact(uri)}", lambda: self._delete(parse_uri(uri)))

    def close(self) -> None:  # noqa: B027 - movers without connections have nothing to close
        """Close pooled connections. The mover stays usable and reconnects when needed."""

    def __enter__(self) -> Mover:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what subclasses implement -----------------------------------------------------

    @abstractmethod
    def _put(self, local_path: str, target: Location, progress: ProgressCallback | None) -> None:
        """Upload the local file ``local_path`` to exactly ``target`` (name already resolved),
        atomically where possible."""

    def _put_verified(self, local_path: str, target: Location, progress: ProgressCallback | None,
                      expected: Digest) -> bool | None:
        """Upload as :meth:`_put` does, checking what the protocol lets the mover check cheaply
        against ``expected`` before the final name appears (:meth:`check_source`,
        :meth:`check_written`). True when what was checked is the hash of the bytes the
        destination stored. The default checks nothing more than :meth:`put` did."""
        self._put(local_path, target, progress)
        return None

    @abstractmethod
    def _get(self, source: Location, local_path: str, progress: ProgressCallback | None) -> None:
        """Download ``source`` into the local file ``local_path`` (a temporary name the base class
        renames); its directory exists."""

    @abstractmethod
    def _delete(self, location: Location) -> None:
        """Remove ``location``."""

    def _size(self, location: Location) -> int | None:
        """The size of the file at ``location``; None (the default) when this mover cannot tell."""
        return None

    # -- helpers for subclasses --------------------------------------------------------

    @staticmethod
    def connection_key(location: Location) -> Hashable:
        """Pool key: connections are shared per (scheme, host, port, user)."""
        return (location.scheme, location.host, location.port, location.user)

    @staticmethod
    def temporary_name(path: str) -> str:
        """A fresh hidden name beside ``path`` to upload to before renaming."""
        return temporary_sibling(path, secrets.token_hex(4))

    @staticmethod
    def check_source(found: Digest, expected: Digest) -> None:
        """The local file read for an upload is not the one announced: changed since (not transient).
        The error names no path: the put's own message does."""
        check(found, expected, "the file (changed since it was announced)", transient=False)

    @staticmethod
    def check_written(found: Digest, expected: Digest, where: str) -> None:
        """What the destination stored is not what was sent (transient: the upload is retried)."""
        check(found, expected, f"the copy stored at {redact(where)}", transient=True)

    def _classify(self, err: Exception) -> TransferError | None:
        """Turn a protocol library's exception into a :class:`TransferError` that states the
        cause (not the action, which the base class adds) and whether it is transient.

        Return None to keep the default: network errors are transient, the rest is not.
        """
        return None

    def _run(self, what: str, action: Callable[[], T]) -> T:
        def attempt() -> T:
            try:
                return action()
            except TransferError:
                raise
            except Exception as err:
                failure = self._classify(err)
                if failure is None:
                    raise
                raise failure from err

        try:
            return with_retries(attempt, what=what, attempts=self.attempts, base_delay=self.retry_delay)
        except TransferError as err:
            kind = ChecksumMismatch if isinstance(err, ChecksumMismatch) else TransferError
            raise kind(f"{what} failed: {err}", transient=err.transient) from (err.__cause__ or err)
        except Exception as err:
            raise TransferError(f"{what} failed: {_describe(err)}", transient=is_transient(err)) from err


def _describe(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text if type(err).__name__ in text else f"{type(err).__name__}: {text}"
