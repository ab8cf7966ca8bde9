"""Which FTP failures are worth retrying, and how to say what went wrong.

Server replies 4xx are transient; 5xx replies (530 login failed, 550 permission denied or
no such file), protocol errors and certificate errors are not. Messages name the FTP command
the server refused (see :func:`step`) and never contain a password.
"""

from __future__ import annotations

import contextlib
import ftplib
import ssl
from collections.abc import Iterator

from trollmoves_core.exceptions import TransferError

_TRANSIENT_SSL = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


class FtpError(TransferError):
    """An FTP or FTPS operation failed; the message names the cause. The mover adds what it was doing."""


def classify(err: Exception) -> FtpError | None:
    """FTP replies and TLS errors as classified :class:`FtpError`; None for anything else."""
    if isinstance(err, ftplib.error_temp):
        return FtpError(describe(err), transient=True)
    if isinstance(err, ftplib.error_perm | ftplib.error_reply | ftplib.error_proto):
        return FtpError(describe(err), transient=False)
    if isinstance(err, ssl.SSLCertVerificationError):
        return FtpError(
            f"TLS certificate verification failed: {err.verify_message or err}; give the CA that signed the "
            "server's certificate with the 'ca_file' connection parameter (or, on a trusted network only, "
            "set verify = false)", transient=False)
    if isinstance(err, ssl.SSLError):
        return FtpError(f"TLS error: {err}", transient=isinstance(err, _TRANSIENT_SSL))
    return None


def describe(err: ftplib.Error) -> str:
    """``server replied '550 ...' to MKD /x; hint`` for an error reply."""
    text = str(err).strip()
    described = f"server replied {text!r}" if text else f"unexpected server reply ({type(err).__name__})"
    if isinstance(err, ftplib.error_proto):
        described = f"unexpected server reply {text!r}"
    command = getattr(err, "step", None)
    if command:
        described += f" to {command}"
    hint = getattr(err, "hint", None)
    return f"{described}; {hint}" if hint else described


@contextlib.contextmanager
def step(description: str) -> Iterator[None]:
    """Label an FTP error reply raised inside with the command that drew it (innermost wins)."""
    try:
        yield
    except ftplib.Error as err:
        if not hasattr(err, "step"):
            err.step = description  # type: ignore[attr-defined]
        raise
