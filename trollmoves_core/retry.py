"""Bounded retries with exponential backoff for transient transfer errors."""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Callable
from typing import TypeVar

from trollmoves_core.exceptions import TransferError

LOG = logging.getLogger(__name__)

T = TypeVar("T")

_TRANSIENT_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT,
                     errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EPIPE}


def is_transient(exc: BaseException) -> bool:
    """Default classification: network trouble is transient, everything else is not.

    Authentication and permission errors are never transient: retrying them only locks
    accounts and floods logs.
    """
    if isinstance(exc, TransferError):
        return exc.transient
    if isinstance(exc, PermissionError | FileNotFoundError):
        return False
    if isinstance(exc, TimeoutError | socket.timeout | ConnectionError | EOFError):
        return True
    return isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS


TRANSIENT_STATUSES = frozenset({408, 425, 429})
"""HTTP statuses below 500 that a later try may get past (timeout, too early, too many requests)."""
PERMANENT_SERVER_STATUSES = frozenset({501, 505})
"""5xx statuses that no retry changes (the server does not implement the method or the HTTP version)."""


def transient_status(status: int) -> bool:
    """Whether an HTTP reply of ``status`` (300 or above) is worth retrying: 408, 425, 429 and the
    5xx but 501 and 505. Every other 4xx is the request's fault, and retrying cannot help."""
    return status in TRANSIENT_STATUSES or (status >= 500 and status not in PERMANENT_SERVER_STATUSES)


def with_retries(action: Callable[[], T], *, what: str, attempts: int = 3, base_delay: float = 0.5,
                 max_delay: float = 10.0, transient: Callable[[BaseException], bool] = is_transient,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``action``; on a transient error, wait and try again, at most ``attempts`` times.

    :param what: describes the action for log lines ("put a.nc to sftp://host/in/").
    :raises: the last error when attempts run out, or the first non-transient error.
    """
    delay = base_delay
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as err:
            if attempt == attempts or not transient(err):
                raise
            LOG.warning("%s failed (attempt %d of %d), retrying in %.1f s: %s",
                        what, attempt, attempts, delay, err)
            sleep(delay)
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")  # pragma: no cover
