"""The ``s3://`` mover, on s3fs (aiobotocore).

Imports of s3fs and botocore happen on first use, so registering the plugin stays cheap.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import contextvars
import functools
import hashlib
import inspect
import io
import logging
import mimetypes
import os
import threading
import zlib
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from trollmoves_core.bwlimit import limited
from trollmoves_core.checksum import ChecksumMismatch, Digest, Hasher
from trollmoves_core.exceptions import TransferError
from trollmoves_core.mover import Mover, ProgressCallback
from trollmoves_core.pool import ConnectionPool
from trollmoves_core.uri import Location
from trollmoves_s3.errors import S3Error, describe, is_transient
from trollmoves_s3.options import S3Options, check_range, part_size

if TYPE_CHECKING:
    from s3fs import S3FileSystem

LOG = logging.getLogger(__name__)

T = TypeVar("T")

READ_CHUNK = 1024 * 1024
"""Bytes read per step when streaming a download or reading a file for a single PUT."""

_RANGE: contextvars.ContextVar[tuple[int | None, int | None] | None] = contextvars.ContextVar(
    "trollmoves_s3_range", default=None)


class S3Mover(Mover):
    """Deliver to and fetch from S3 and S3-compatible object stores (``s3://bucket/key``).

    Connection parameters are read by :class:`~trollmoves_s3.options.S3Options` (upstream's
    allow-list plus ``multipart_threshold``, ``multipart_chunksize``, ``range_start``/``range_end``).
    Uploads go straight to the final key (an object appears only when complete); a failed
    multipart upload is aborted before the error is raised, and an abort that fails is
    retried before the next upload and on :meth:`close`. A missing bucket is an error, never
    created. Missing buckets or keys, refused credentials and other 4xx replies are not
    transient; network errors, throttling and 5xx are. Deleting a missing key succeeds.
    Operator's reference: ``docs/movers/s3.md``.
    """

    NAME = "s3"
    SCHEMES = ("s3",)

    def __init__(self, connection_params: Mapping[str, Any] | None = None) -> None:
        super().__init__(connection_params)
        self.options = S3Options.from_params(self.params)
        self._endpoints: dict[Hashable, Location] = {}
        self._orphans: dict[Hashable, list[tuple[str, str, str]]] = {}
        self._pool: ConnectionPool[S3FileSystem] = ConnectionPool(
            self._connect, _close, idle_timeout=self.idle_timeout)

    @property
    def connections_opened(self) -> int:
        """How many ``S3FileSystem`` instances this mover created so far."""
        return self._pool.opened

    def connection_key(self, location: Location) -> Hashable:  # type: ignore[override]
        """Filesystems are shared per endpoint, credentials, profile and region (not per bucket)."""
        secret = location.password
        return ("s3", self.options.endpoint_url, location.user or self.options.access_key,
                hashlib.sha256(secret.encode()).hexdigest() if secret else None,
                self.options.profile, self.options.region_name, self.options.anon)

    def put(self, local_path: str | os.PathLike[str], dest_uri: str, *,
            progress: ProgressCallback | None = None, expected: Digest | None = None) -> str:
        """Upload as :meth:`Mover.put` does; ``s3://bucket`` means the top of the bucket, like ``s3://bucket/``."""
        parts = urlsplit(dest_uri, allow_fragments=False)
        if parts.scheme and parts.netloc and not parts.path:
            dest_uri = urlunsplit(parts._replace(path="/"))
        return super().put(local_path, dest_uri, progress=progress, expected=expected)

    def get_range(self, src_uri: str, local_path: str | os.PathLike[str], start: int, end: int | None = None, *,
                  progress: ProgressCallback | None = None) -> str:
        """Download bytes ``[start, end)`` of ``src_uri`` (to the end when ``end`` is None).

        Like :meth:`get` otherwise: atomic on the local side, retried, errors as TransferError;
        returns the local file's path as a ``str``.
        """
        check_range(start, end)
        token = _RANGE.set((start, end))
        try:
            return self.get(src_uri, local_path, progress=progress)
        finally:
            _RANGE.reset(token)

    def close(self) -> None:
        """Abort multipart uploads left by earlier failures if possible; close filesystems."""
        for pool_key in list(self._orphans):
            with contextlib.suppress(Exception):
                self._using(self._endpoints[pool_key], lambda fs, k=pool_key: self._abort_orphans(fs, k))
        self._pool.close_all()

    # -- protocol ----------------------------------------------------------------------

    def _put(self, local_path: str, target: Location, progress: ProgressCallback | None) -> None:
        self._put_verified(local_path, target, progress, None)

    def _put_verified(self, local_path: str, target: Location, progress: ProgressCallback | None,
                      expected: Digest | None) -> None:
        """The data is hashed as it is read and checked before the object is created; a single
        upload also sends the announced sha256 as ``ChecksumSHA256``, which S3 checks on the
        bytes it received (a mismatch is refused with ``BadDigest``). Every part of a multipart
        upload carries its own checksum (CRC32, or the ``s3_additional_kwargs`` ChecksumAlgorithm),
        which S3 checks likewise."""
        bucket, key = _split(target)
        if not key:
            raise S3Error(f"no object name in {target}", transient=False)

        pool_key = self.connection_key(target)

        def upload(fs: S3FileSystem) -> None:
            self._abort_orphans(fs, pool_key)
            size = os.path.getsize(local_path)
            extra: dict[str, Any] = {}
            content_type, _ = mimetypes.guess_type(os.path.basename(local_path))
            if content_type:
                extra["ContentType"] = content_type
            if size >= self.options.multipart_threshold:
                self._upload_multipart(fs, local_path, pool_key=pool_key, bucket=bucket, key=key, size=size,
                                       progress=progress, extra=extra, expected=expected)
            else:
                self._upload_single(fs, local_path, bucket=bucket, key=key, progress=progress, extra=extra,
                                    expected=expected)

        self._using(target, upload)

    def _get(self, source: Location, local_path: str, progress: ProgressCallback | None) -> None:
        bucket, key = _split(source)
        if not key:
            raise S3Error(f"no object name in {source}", transient=False)
        start, end = _RANGE.get() or (self.options.range_start, self.options.range_end)
        request: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if start is not None or end is not None:
            request["Range"] = f"bytes={start or 0}-{'' if end is None else end - 1}"
        if source.query.get("versionId"):
            request["VersionId"] = source.query["versionId"]
        self._using(source, lambda fs: _download(fs, request, local_path, progress))

    def _size(self, location: Location) -> int | None:
        bucket, key = _split(location)
        start, end = _RANGE.get() or (self.options.range_start, self.options.range_end)
        if not key or start is not None or end is not None:  # a range fetch is not the object's size
            return None
        return self._using(location, lambda fs: fs.call_s3("head_object", Bucket=bucket, Key=key)["ContentLength"])

    def _delete(self, location: Location) -> None:
        bucket, key = _split(location)
        if not key:
            raise S3Error(f"no object name in {location}", transient=False)
        self._using(location, lambda fs: fs.call_s3("delete_object", Bucket=bucket, Key=key))

    # -- connections -------------------------------------------------------------------

    def _using(self, location: Location, action: Callable[[S3FileSystem], T]) -> T:
        """Run ``action`` with a pooled filesystem; turn any failure into an :class:`S3Error`.

        A filesystem whose call failed with a clean server reply (no such key, access denied)
        is kept for reuse; one that hit network trouble is dropped.
        """
        bucket, key = _split(location)
        pool_key = self.connection_key(location)
        self._endpoints[pool_key] = location
        refused: S3Error | None = None
        try:
            with self._pool.connection(pool_key) as fs:
                try:
                    return action(fs)
                except ChecksumMismatch:
                    raise
                except Exception as err:
                    failure = S3Error(describe(err, bucket, key), transient=is_transient(err))
                    failure.__cause__ = err
                    if failure.transient:
                        raise failure from err
                    refused = failure
        except TransferError:
            raise
        except Exception as err:  # creating the filesystem failed (bad config_kwargs, say)
            raise S3Error(describe(err, bucket, key), transient=is_transient(err)) from err
        assert refused is not None
        raise refused

    def _connect(self, pool_key: Hashable) -> S3FileSystem:
        from s3fs import S3FileSystem

        location = self._endpoints[pool_key]
        kwargs = dict(self.options.fs_kwargs)
        if location.user:
            kwargs["key"] = location.user
            kwargs["secret"] = location.password
        if "session" not in kwargs:
            session_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k not in _fs_parameters()}
            kwargs["session"] = _shared_session(session_kwargs)
        fs = S3FileSystem(skip_instance_cache=True, **kwargs)
        fs.retries = 1  # s3fs' own retry loop would multiply botocore's and ours
        fs.connect()
        LOG.debug("Opened an S3 connection to %s (profile %s)", _endpoint_of(fs), self.options.profile or "-")
        return fs

    # -- multipart ---------------------------------------------------------------------

    def _upload_multipart(self, fs: S3FileSystem, local_path: str, *, pool_key: Hashable, bucket: str, key: str,
                          size: int, progress: ProgressCallback | None, extra: dict[str, Any],
                          expected: Digest | None = None) -> None:
        chunk = part_size(size, self.options.multipart_chunksize)
        hasher = Hasher(expected.method if expected is not None else None)
        # Each part carries its checksum (CRC32 as boto3's uploads, or the s3_additional_kwargs
        # ChecksumAlgorithm) for the server to check. It is computed here, beside the event loop: botocore
        # would compute it on s3fs' one loop thread, one part at a time, and the upload would wait on it.
        # A store without flexible checksums is told so as botocore is: request_checksum_calculation = when_required.
        default = None if fs.config_kwargs.get("request_checksum_calculation") == "when_required" else "CRC32"
        algorithm = str(fs.s3_additional_kwargs.get("ChecksumAlgorithm") or default or "").upper()
        part_checksum = _PART_CHECKSUMS.get(algorithm)
        if part_checksum is not None:
            extra = {**extra, "ChecksumAlgorithm": algorithm}
        created = fs.call_s3("create_multipart_upload", Bucket=bucket, Key=key, **extra)
        upload_id = created["UploadId"]
        # An upload created with a checksum algorithm must list every part's checksum on completion, or
        # S3 refuses it.
        checksum_field = f"Checksum{created['ChecksumAlgorithm'].upper()}" if created.get("ChecksumAlgorithm") else None
        pending: deque[tuple[int, int, concurrent.futures.Future[Any]]] = deque()
        parts: list[dict[str, Any]] = []
        # under a bandwidth limit each part is paid for before it goes, not once it is stored: else
        # the first max_concurrency parts would all leave at once, ahead of the limit
        prepay = limited(progress)

        def finish_oldest() -> None:
            number, nbytes, future = pending.popleft()
            reply = future.result()
            part = {"PartNumber": number, "ETag": reply["ETag"]}
            if checksum_field and reply.get(checksum_field):
                part[checksum_field] = reply[checksum_field]
            parts.append(part)
            if progress and not prepay:
                progress(nbytes)

        try:
            with open(local_path, "rb") as source, concurrent.futures.ThreadPoolExecutor(1) as hashing:
                number = 0
                while True:
                    data = source.read(chunk)
                    part_sum = hashing.submit(part_checksum, data) if part_checksum is not None else None
                    hasher.update(data)  # the whole file's checksum, alongside the part's
                    if not data and number:
                        break
                    number += 1
                    if prepay:
                        progress(len(data))
                    checksum = {f"Checksum{algorithm}": part_sum.result()} if part_sum is not None else {}
                    request = fs._call_s3("upload_part", Bucket=bucket, Key=key, UploadId=upload_id,
                                          PartNumber=number, Body=_unshared(data), **checksum)
                    pending.append((number, len(data), asyncio.run_coroutine_threadsafe(request, fs.loop)))
                    while len(pending) >= self.options.max_concurrency:
                        finish_oldest()
                    if len(data) < chunk:
                        break
                while pending:
                    finish_oldest()
            if expected is not None:
                self.check_source(hasher.digest(), expected)
            fs.call_s3("complete_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id,
                       MultipartUpload={"Parts": parts})
        except BaseException:
            # Parts still in flight could land after the abort and keep storage: let them finish.
            concurrent.futures.wait([future for _, _, future in pending])
            self._abort(fs, pool_key, bucket, key, upload_id)
            raise
        LOG.debug("Multipart upload of s3://%s/%s done: %d parts of %d bytes", bucket, key, len(parts), chunk)

    def _abort(self, fs: S3FileSystem, pool_key: Hashable, bucket: str, key: str, upload_id: str) -> None:
        try:
            fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception as err:
            LOG.warning("Could not abort the failed multipart upload of s3://%s/%s (%s); will retry: %s",
                        bucket, key, upload_id, describe(err, bucket, key))
            self._orphans.setdefault(pool_key, []).append((bucket, key, upload_id))
        else:
            LOG.debug("Aborted the failed multipart upload of s3://%s/%s", bucket, key)

    def _abort_orphans(self, fs: S3FileSystem, pool_key: Hashable) -> None:
        for bucket, key, upload_id in self._orphans.pop(pool_key, []):
            self._abort(fs, pool_key, bucket, key, upload_id)

    def _upload_single(self, fs: S3FileSystem, local_path: str, *, bucket: str, key: str,
                       progress: ProgressCallback | None, extra: dict[str, Any], expected: Digest | None) -> None:
        blocks = []
        hasher = Hasher(expected.method if expected is not None else None)
        with open(local_path, "rb") as source:
            while block := source.read(READ_CHUNK):
                blocks.append(block)
                hasher.update(block)
                if progress:
                    progress(len(block))
        if expected is not None:
            self.check_source(hasher.digest(), expected)
            if expected.method == "sha256" and expected.value:
                extra = {**extra, "ChecksumSHA256": expected.value}
        try:
            fs.call_s3("put_object", Bucket=bucket, Key=key, Body=b"".join(blocks), **extra)
        except Exception as err:
            if expected is not None and "BadDigest" in f"{type(err).__name__} {err}":
                raise ChecksumMismatch(f"S3 refused s3://{bucket}/{key}: the data it received does not match the "
                                       f"announced sha256 {expected.value} ({err})", transient=True) from err
            raise


def _unshared(data: bytes) -> io.BytesIO:
    """``data`` in a buffer of its own, copied here rather than on the event loop: botocore turns a
    ``bytes`` body into a ``BytesIO`` sharing it, which aiohttp then copies, on the loop thread."""
    body = io.BytesIO()
    body.write(data)
    body.seek(0)
    return body


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


_PART_CHECKSUMS: dict[str, Callable[[bytes], str]] = {
    "CRC32": lambda data: _b64(zlib.crc32(data).to_bytes(4, "big")),
    "SHA1": lambda data: _b64(hashlib.sha1(data).digest()),
    "SHA256": lambda data: _b64(hashlib.sha256(data).digest()),
}
"""Part checksums as S3 takes them (``ChecksumCRC32``...), by algorithm; zlib and hashlib let other
threads run meanwhile. Others (CRC32C, CRC64NVME) are left to botocore."""


def _download(fs: S3FileSystem, request: dict[str, Any], local_path: str, progress: ProgressCallback | None) -> None:
    from fsspec.asyn import sync

    response = fs.call_s3("get_object", **request)
    body = response["Body"]
    expected = response.get("ContentLength")
    received = 0
    try:
        with open(local_path, "wb") as sink:
            while data := sync(fs.loop, body.read, READ_CHUNK):
                sink.write(data)
                received += len(data)
                if progress:
                    progress(len(data))
    finally:
        fs.loop.call_soon_threadsafe(body.close)
    if expected is not None and received != expected:
        raise ConnectionError(f"download cut short: got {received} of {expected} bytes")


_SESSIONS: dict[Hashable, Any] = {}
_SESSIONS_LOCK = threading.Lock()


def _shared_session(session_kwargs: dict[str, Any]) -> Any:
    """One aiobotocore session per profile (and other session arguments) for the whole process.

    A session holds botocore's parsed service models: sharing it makes a new filesystem cheap,
    which matters when callers create a mover per file.
    Explicit ``key``/``secret`` go to each client, not to the session, so sharing is safe.
    """
    from aiobotocore.session import AioSession

    try:
        key: Hashable = tuple(sorted(session_kwargs.items()))
        hash(key)
    except TypeError:  # unhashable session arguments: no sharing
        return AioSession(**session_kwargs)
    with _SESSIONS_LOCK:
        if key not in _SESSIONS:
            _SESSIONS[key] = AioSession(**session_kwargs)
        return _SESSIONS[key]


@functools.cache
def _fs_parameters() -> frozenset[str]:
    """Keyword arguments S3FileSystem itself takes; the rest are for the aiobotocore session."""
    from s3fs import S3FileSystem

    return frozenset(inspect.signature(S3FileSystem.__init__).parameters) | {
        "use_listings_cache", "listings_expiry_time", "max_paths", "skip_instance_cache"}


def _split(location: Location) -> tuple[str, str]:
    """Bucket and key of an ``s3://`` location (the key without its leading ``/``)."""
    return location.host, location.path.lstrip("/")


def _close(fs: S3FileSystem) -> None:
    creator = getattr(fs, "_s3creator", None)
    if creator is not None and fs._s3 is not None:
        type(fs).close_session(fs.loop, creator)
        fs._s3 = None


def _endpoint_of(fs: S3FileSystem) -> str:
    """The endpoint the connected filesystem's client talks to (from ``endpoint_url``,
    ``client_kwargs``, the AWS config or the region)."""
    client = getattr(fs, "_s3", None)
    return str(getattr(getattr(client, "meta", None), "endpoint_url", None) or "an unknown endpoint")
