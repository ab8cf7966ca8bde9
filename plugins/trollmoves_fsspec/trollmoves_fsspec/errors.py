"""Which failures of an fsspec filesystem are worth retrying, and how to say what went wrong.

fsspec implementations raise the builtin file errors for what the server refused:
``FileNotFoundError``, ``PermissionError``, ``IsADirectoryError``... are not transient. Other
``OSError`` instances, timeouts and the network errors of the HTTP libraries underneath (httpx, aiohttp,
requests, recognised by class name so none is imported) are. An error carrying an HTTP status
(``status_code``, ``status``) is judged by :func:`~trollmoves_core.retry.transient_status`. Anything else,
a ``NotImplementedError`` (the filesystem cannot do that), a bad storage option (a
``TypeError`` from its constructor) or a server certificate the client does not trust, is not.
"""

from __future__ import annotations

import ssl

from trollmoves_core.exceptions import TransferError, causes
from trollmoves_core.retry import is_transient as core_is_transient
from trollmoves_core.retry import transient_status
from trollmoves_core.uri import redact

PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError,
             NotImplementedError, ImportError, TypeError)

NETWORK_ERRORS = frozenset({
    "TransportError", "NetworkError", "TimeoutException", "RemoteProtocolError",  # httpx
    "ClientConnectionError", "ClientPayloadError", "ServerDisconnectedError",  # aiohttp
    "ConnectionError", "ChunkedEncodingError", "Timeout",  # requests
    "FSTimeoutError",  # fsspec's async bridge
})
"""Class names (anywhere in an exception's MRO) of network trouble in the libraries under fsspec."""


class FsspecError(TransferError):
    """An fsspec operation failed; the message names the cause. The mover adds what it was doing."""


def classify(err: BaseException) -> FsspecError:
    """``err`` as an :class:`FsspecError` that says whether retrying may help."""
    return FsspecError(describe(err), transient=is_transient(err))


def is_transient(err: BaseException) -> bool:
    """True when retrying ``err`` later may succeed."""
    if any(isinstance(cause, ssl.SSLCertVerificationError) for cause in causes(err)):
        return False  # a certificate the client does not trust stays untrusted
    for cause in causes(err):
        if isinstance(cause, TransferError):
            return cause.transient
        if isinstance(cause, PERMANENT):
            return False
        status = http_status(cause)
        if status is not None:
            return transient_status(status)
        if any(cls.__name__ in NETWORK_ERRORS for cls in type(cause).__mro__) or core_is_transient(cause):
            return True
        if isinstance(cause, OSError):
            return True  # an I/O failure the library did not call refused
    return False


def http_status(err: BaseException) -> int | None:
    """The HTTP status an exception carries (webdav4's ``status_code``, aiohttp's ``status``), if any."""
    for name in ("status_code", "status"):
        value = getattr(err, name, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    return None


def describe(err: BaseException) -> str:
    """One line naming the cause: the exception's type and text, any URL in it without password."""
    text = redact(" ".join(str(err).split())) or type(err).__name__
    return text if type(err).__name__ in text else f"{type(err).__name__}: {text}"
