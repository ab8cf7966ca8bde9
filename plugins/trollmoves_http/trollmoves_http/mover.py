"""The ``http://`` and ``https://`` mover, on requests.

Downloads stream in 1 MiB chunks; a download that loses its connection part way continues
where it stopped with a ``Range`` request guarded by ``If-Range`` (the reply's ETag or
Last-Modified), so a file that changed meanwhile is fetched again from the start rather than
stitched together. Uploads are an HTTP ``PUT`` to a hidden temporary name and a WebDAV
``MOVE`` onto the final name, which the server does atomically.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote, urlencode

import requests
import urllib3

from trollmoves_core.checksum import Digest, Hasher
from trollmoves_core.exceptions import TransferError
from trollmoves_core.mover import Mover, ProgressCallback
from trollmoves_core.pool import ConnectionPool
from trollmoves_core.uri import Location, redact
from trollmoves_http.errors import HttpError, classify, reason, status_error
from trollmoves_http.options import HttpOptions

LOG = logging.getLogger(__name__)

T = TypeVar("T")

CHUNK = 1024 * 1024
"""Bytes per read and write: 1 MiB chunks keep loopback HTTPS near 270 MiB/s (64 KiB: 210)."""

_PATH_SAFE = "/%!$&'()*+,;=:@~"
"""Characters of a URI path sent as they are: existing ``%XX`` escapes and RFC 3986 sub-delims
stay; spaces, ``#``, ``?`` and non-ASCII characters are escaped."""
_SMALL_BODY = 64 * 1024
"""Error bodies up to this size are read rather than dropped with their connection."""
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(?:\d+|\*)")

try:
    _USER_AGENT = f"trollmoves-http/{version('trollmoves-http')}"
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    _USER_AGENT = "trollmoves-http"


class HttpMover(Mover):
    """Fetch from HTTP(S) servers; deliver to WebDAV servers (``PUT`` then ``MOVE``).

    Credentials: the URI's user and password, then the ``username``/``password`` connection
    parameters (basic auth), or a bearer ``token``/``token_file``; with none of them, requests
    looks in ``~/.netrc``. TLS certificates are verified against the system CAs or ``ca_file``.
    Other parameters: those of :class:`~trollmoves_http.options.HttpOptions`,
    ``connection_uptime``, ``retries``, ``retry_delay``. 408, 425, 429 and 5xx replies and
    network errors are transient; other 4xx replies and certificate errors are not. Each
    endpoint gets a ``requests.Session`` (keep-alive connections) reused across transfers.
    Operator's reference: ``docs/movers/http.md``.
    """

    NAME = "http"
    SCHEMES = ("http", "https")
    BACKUP_HOSTS = True

    def __init__(self, connection_params: Mapping[str, Any] | None = None) -> None:
        super().__init__(connection_params)
        self.options = HttpOptions.from_params(self.params)
        if not self.options.verify:
            LOG.warning("HTTP mover: TLS certificates are not verified (verify = false): trusted networks only")
            # said once here, rather than by urllib3 on every request
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
        self._endpoints: dict[Hashable, Location] = {}
        self._pool: ConnectionPool[requests.Session] = ConnectionPool(
            self._connect, _close, idle_timeout=self.idle_timeout)

    @property
    def connections_opened(self) -> int:
        """How many sessions this mover created so far (each keeps its own TCP connections)."""
        return self._pool.opened

    def close(self) -> None:
        """Close every pooled session and its connections."""
        self._pool.close_all()

    # -- protocol ----------------------------------------------------------------------

    def _put(self, local_path: str, target: Location, progress: ProgressCallback | None) -> None:
        self._put_verified(local_path, target, progress, None)

    def _put_verified(self, local_path: str, target: Location, progress: ProgressCallback | None,
                      expected: Digest | None) -> None:
        """The data is hashed as it is sent; before the ``MOVE``, the hash is checked and the
        server asked for the stored size (``HEAD``)."""
        final = self._url(target)
        temporary = self._url(target.with_path(self.temporary_name(target.path))) if self.options.webdav_move \
            else final

        def upload(session: requests.Session) -> None:
            try:
                with open(local_path, "rb") as source:
                    body = _Upload(source, expected.method if expected is not None else None, progress)
                    self._expect(self._send(session, "PUT", temporary, data=body))
                if expected is not None:
                    self.check_source(body.hasher.digest(), expected)
                    stored = _length(self._expect(self._send(session, "HEAD", temporary)))
                    if stored is not None:
                        self.check_written(Digest(stored), Digest(expected.size), target.geturi())
                if temporary != final:
                    self._expect(self._send(session, "MOVE", temporary, headers={"Destination": final,
                                                                                 "Overwrite": "T"}),
                                 hint_405="the server does not support WebDAV MOVE; set webdav_move = false "
                                          "to PUT straight to the final name")
            except BaseException:
                if temporary != final:
                    self._remove_quietly(session, temporary)
                raise

        self._using(target, upload)

    def _get(self, source: Location, local_path: str, progress: ProgressCallback | None) -> None:
        url = self._url(source)
        with open(local_path, "wb") as sink:
            self._using(source, lambda session: self._download(session, url, sink, progress))

    def _size(self, location: Location) -> int | None:
        url = self._url(location)
        return self._using(location, lambda session: _length(self._expect(
            self._send(session, "HEAD", url, allow_redirects=True))))

    def _delete(self, location: Location) -> None:
        url = self._url(location)
        self._using(location, lambda session: self._expect(self._send(session, "DELETE", url)))

    def _classify(self, err: Exception) -> TransferError | None:
        return classify(err)

    # -- downloads ---------------------------------------------------------------------

    def _download(self, session: requests.Session, url: str, sink: BinaryIO,
                  progress: ProgressCallback | None) -> None:
        """GET ``url`` into ``sink``; after a lost connection, ask for the rest (at most
        ``resumes`` times). A ``200`` in answer to ``Range`` + ``If-Range`` (the file changed,
        or the server ignores ranges) or a ``416`` (the file shrank) starts over."""
        received = reported = 0
        validator: str | None = None
        resumes = self.options.resumes
        while True:
            headers = {}
            if received and validator:
                headers = {"Range": f"bytes={received}-", "If-Range": validator}
            try:
                with self._send(session, "GET", url, headers=headers, stream=True, allow_redirects=True) as reply:
                    if received and reply.status_code == 416:
                        LOG.info("%s: the file is shorter than the %d bytes already fetched; starting over",
                                 redact(url), received)
                        received = _restart(sink)
                        continue
                    self._expect(reply)
                    if received and reply.status_code != 206:
                        LOG.info("%s changed since the download began; starting over", redact(url))
                        received = _restart(sink)
                    elif received:
                        _check_continues(reply, received)
                    validator = _validator(reply)
                    for chunk in reply.iter_content(CHUNK):
                        sink.write(chunk)
                        received += len(chunk)
                        if progress is not None and received > reported:
                            progress(received - reported)
                            reported = received
                    return
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError) as err:
                if not (received and validator and resumes) or isinstance(err, requests.exceptions.SSLError):
                    raise
                resumes -= 1
                LOG.warning("%s: connection lost after %d bytes (%s); resuming", redact(url), received, reason(err))

    # -- requests ----------------------------------------------------------------------

    def _url(self, location: Location) -> str:
        """The URL to send: no user part (credentials travel as auth), the path escaped."""
        url = f"{location.scheme}://{location.netloc().rpartition('@')[2]}{quote(location.path or '/', _PATH_SAFE)}"
        return f"{url}?{urlencode(location.query)}" if location.query else url

    def _send(self, session: requests.Session, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One request; redirects are followed only when asked (GET, HEAD). ``verify`` is passed
        per request: a session's own would lose to ``REQUESTS_CA_BUNDLE``."""
        kwargs.setdefault("allow_redirects", False)
        return session.request(method, url, timeout=self.options.timeout, verify=self.options.tls_verify, **kwargs)

    def _expect(self, reply: requests.Response, *, hint_405: str | None = None) -> requests.Response:
        """``reply`` when it is a success; otherwise the :class:`HttpError` it stands for."""
        if reply.status_code < 300:
            return reply
        _discard(reply)
        error = status_error(reply, sent_auth="Authorization" in reply.request.headers)
        if reply.status_code == 405 and hint_405:
            error = HttpError(f"HTTP 405 {reply.reason}: {hint_405}", transient=False)
        raise error

    def _remove_quietly(self, session: requests.Session, url: str) -> None:
        try:
            self._send(session, "DELETE", url).close()
        except Exception as err:
            LOG.debug("Could not remove %s: %s", redact(url), reason(err))

    # -- sessions ----------------------------------------------------------------------

    def _using(self, location: Location, action: Callable[[requests.Session], T]) -> T:
        """Run ``action`` with a pooled session; one that only got an error reply stays pooled."""
        key = self.connection_key(location)
        self._endpoints[key] = location
        refused: HttpError | None = None
        with self._pool.connection(key) as session:
            try:
                return action(session)
            except HttpError as err:
                refused = err  # the reply was read: the session is in a known state
        assert refused is not None
        raise refused

    def _connect(self, key: Hashable) -> requests.Session:
        location = self._endpoints[key]
        session = requests.Session()
        session.max_redirects = self.options.max_redirects
        # The exact bytes of the file: a compressed reply would break sizes, checksums and Range.
        session.headers.update({"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"})
        credentials = self.options.credentials_for(location)
        if credentials is not None and not credentials[1]:  # a user without password: ~/.netrc may know it
            found = requests.utils.get_netrc_auth(self._url(location))
            if found is not None and found[0] == credentials[0]:
                credentials = found
        token = self.options.bearer_token()
        if token is not None:
            session.auth = _BearerAuth(token)
        elif credentials is not None:
            session.auth = credentials
        # else: requests applies ~/.netrc (trust_env stays on, as do proxy variables)
        LOG.debug("New HTTP session for %s://%s (%s)", location.scheme, location.netloc(),
                  "bearer token" if token else "basic auth" if credentials else "netrc or anonymous")
        return session


class _BearerAuth(requests.auth.AuthBase):
    """``Authorization: Bearer <token>``; requests drops it on a redirect to another host."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(***)"


class _Upload:
    """A PUT body: the file in 1 MiB chunks, hashed and reported as they are sent. Its length
    gives the request a ``Content-Length`` (not chunked transfer encoding, which some servers refuse)."""

    def __init__(self, source: BinaryIO, method: str | None, progress: ProgressCallback | None) -> None:
        self._source, self._progress = source, progress
        self._size = os.fstat(source.fileno()).st_size
        self.hasher = Hasher(method)

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self._source.read(CHUNK):
            self.hasher.update(chunk)
            if self._progress is not None:
                self._progress(len(chunk))
            yield chunk


def _restart(sink: BinaryIO) -> int:
    sink.seek(0)
    sink.truncate()
    return 0


def _validator(reply: requests.Response) -> str | None:
    """What ``If-Range`` may carry to resume this reply: a strong ETag, else Last-Modified; None
    when resuming is unsafe (no validator, or a compressed body whose offsets are not the file's)."""
    if reply.headers.get("Content-Encoding", "identity") != "identity":
        return None
    etag = reply.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return reply.headers.get("Last-Modified")


def _check_continues(reply: requests.Response, offset: int) -> None:
    match = _CONTENT_RANGE.match(reply.headers.get("Content-Range", ""))
    if not match or int(match.group(1)) != offset:
        raise HttpError(f"asked for the bytes from {offset}, got {reply.headers.get('Content-Range', 'no range')!r}",
                        transient=True)


def _discard(reply: requests.Response) -> None:
    """Read a small error body, so that its connection serves the next request; close a large one."""
    length = _length(reply)
    if length is not None and length <= _SMALL_BODY:
        with contextlib.suppress(requests.RequestException):
            reply.content  # noqa: B018 - read to free the connection
    reply.close()


def _length(reply: requests.Response) -> int | None:
    length = reply.headers.get("Content-Length")
    return int(length) if length is not None and length.isdigit() else None


def _close(session: requests.Session) -> None:
    session.close()
