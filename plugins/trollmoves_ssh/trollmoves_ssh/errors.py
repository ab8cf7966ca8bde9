"""The SSH plugin's own errors: a login that cannot succeed by retrying.

Network trouble (refused or dropped connections, timeouts) is raised as the standard
:class:`ConnectionError` / :class:`TimeoutError` and is transient; the errors here are not.
"""

from __future__ import annotations

from trollmoves_core.exceptions import TransferError


class SshError(TransferError):
    """An SSH operation failed; the message names the cause. The mover adds what it was doing."""


class SshLoginError(SshError):
    """The server was reached but refused us (or we refused it); retrying cannot help."""


class UnknownHostKeyError(SshLoginError):
    """The server's host key is in no known-hosts file and the policy is ``reject``."""


class AuthenticationError(SshLoginError):
    """The server rejected every credential we offered."""
