"""Which HTTP failures are worth retrying, and how to say what went wrong.

Replies are judged by their status: 408, 425, 429 and 5xx (but 501 and 505) are transient;
every other 4xx, and a redirect a PUT was answered with, is not, because retrying cannot
help and only floods logs (or locks accounts). Network trouble (refused or dropped
connections, timeouts, truncated bodies) is transient; certificate errors, too many
redirects and malformed URLs are not. Messages never contain a password or a token: URLs
reach the wire without their user part, and tokens only travel in headers.
"""

from __future__ import annotations

import re
import ssl

import requests

from trollmoves_core.exceptions import TransferError
from trollmoves_core.retry import transient_status
from trollmoves_core.uri import redact

_CONNECTION_PREFIX = re.compile(r"^(<[^>]*>|\w*Connection\w*\([^)]*\)): ")
_TRANSIENT_SSL = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)

_HINTS = {
    401: "the server wants credentials: give user and password in the URI or the connection parameters, "
         "a token (token or token_file), or a ~/.netrc entry",
    403: "the server refuses these credentials here",
    404: "no such file on the server",
    405: "the server does not allow this method here",
    413: "the server refuses a body this large (nginx: client_max_body_size)",
}


class HttpError(TransferError):
    """An HTTP operation failed; the message names the cause. The mover adds what it was doing."""


def status_error(reply: requests.Response, *, sent_auth: bool = False) -> HttpError:
    """The failure a reply of status 300 or above stands for."""
    status = reply.status_code
    text = f"HTTP {status} {reply.reason or ''}".rstrip()
    hint = _HINTS.get(status)
    if status == 401 and sent_auth:
        hint = "the server refused these credentials"
    if 300 <= status < 400:
        hint = f"redirected to {redact(reply.headers.get('Location', '?'))}; use that address"
    return HttpError(f"{text}: {hint}" if hint else text, transient=transient_status(status))


def classify(err: Exception) -> HttpError | None:
    """A requests exception as a classified :class:`HttpError`; None for anything else."""
    if isinstance(err, requests.exceptions.SSLError):
        verification = _cause(err, ssl.SSLCertVerificationError)
        if verification is not None:
            why = getattr(verification, "verify_message", None) or verification
            return HttpError(
                f"TLS certificate verification failed: {why}; give the CA "
                "that signed the server's certificate with the 'ca_file' connection parameter (or, on a trusted "
                "network only, set verify = false)", transient=False)
        dropped = _cause(err, _TRANSIENT_SSL) is not None  # the line went down, not the trust
        return HttpError(f"TLS error: {reason(err)}", transient=dropped)
    if isinstance(err, requests.exceptions.TooManyRedirects):
        return HttpError(f"too many redirects ({reason(err)}); raise max_redirects if this is intended",
                         transient=False)
    if isinstance(err, requests.exceptions.InvalidURL | requests.exceptions.InvalidHeader
                  | requests.exceptions.MissingSchema | requests.exceptions.InvalidSchema):
        return HttpError(reason(err), transient=False)
    if isinstance(err, requests.exceptions.Timeout):
        return HttpError(f"timed out: {reason(err)}", transient=True)
    if isinstance(err, requests.exceptions.ConnectionError | requests.exceptions.ChunkedEncodingError
                  | requests.exceptions.ContentDecodingError):
        return HttpError(f"connection failed: {reason(err)}", transient=True)
    return None


def reason(err: BaseException) -> str:
    """The innermost useful text of a requests/urllib3 exception, on one line.

    urllib3 wraps the real cause (``[Errno 111] Connection refused``) in a pool error that quotes
    the whole request; the cause alone says it.
    """
    current: BaseException = err
    for _ in range(8):
        inner = getattr(current, "reason", None)
        if not isinstance(inner, BaseException):
            args = getattr(current, "args", ())
            inner = next((a for a in args if isinstance(a, BaseException)), None)
        if inner is None:
            break
        current = inner
    text = " ".join(str(current).split()) or type(current).__name__
    # urllib3 prefixes the connection: "HTTPConnection(host='h', port=1): Failed to ..." (the URI says it)
    return redact(_CONNECTION_PREFIX.sub("", text))


def _cause(err: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of type ``kind`` (or one of them) among ``err``'s arguments, reasons and causes."""
    seen: set[int] = set()
    todo: list[BaseException] = [err]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return current
        todo += [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        todo += [c for c in (getattr(current, "reason", None), current.__cause__, current.__context__)
                 if isinstance(c, BaseException)]
    return None
