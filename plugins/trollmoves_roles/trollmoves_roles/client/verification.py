"""Reading a client's delivered files back against the size and checksum they were announced with.

A client verifies what it can read: a ``file`` destination on this host (when the server runs
here too, or the file is visible here: a server elsewhere writes ``file://`` destinations on its
own disk), and an ``ftp``/``ftps`` destination on this host when ``ftp_root`` says where the FTP
server's root is. A copy that does not match is deleted, so it is never taken for delivered.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trollmoves_core.checksum import COPY_VERIFIED_KEY, ChecksumMismatch, Digest, from_data, verify_file
from trollmoves_core.uri import parse_uri
from trollmoves_roles.protocol.messages import dicts_with, is_local_host

LOG = logging.getLogger(__name__)

INLINE_BYTES = 1024 * 1024
"""Files up to this size (in all) are read back on the chain's loop: hashing 1 MiB takes about
4 ms, less than handing the work to a thread and back costs a small file."""


@dataclass(frozen=True, slots=True)
class LocalCheck:
    """One delivered file to read back: its local ``path`` and what it must be."""

    path: str
    expected: Digest


def copy_verified(reply: Mapping[str, Any], sent: Mapping[str, Any]) -> str | None:
    """The method by which the server says its mover hashed the copies it stored and found them to
    be the announced files (our servers' ``copy_verified`` reply key), or None: an upstream server
    never says so, and a key the push itself carried (an upstream server echoes the push) is not
    the server's word."""
    method = reply.get(COPY_VERIFIED_KEY) if isinstance(reply, Mapping) else None
    return method if isinstance(method, str) and COPY_VERIFIED_KEY not in sent else None


def local_checks(result: Mapping[str, Any], destination: str, server: str, ftp_root: str = "/",
                 verified_by: str | None = None) -> list[LocalCheck]:
    """The files of a result message (uris already rewritten to the delivered places) this host can
    verify. ``server`` is the announcing server's request address. When that server runs on this
    host and its mover hashed the stored copies by the announced method (``verified_by``, from
    :func:`copy_verified`), only their sizes are checked: a read-back would hash the same page cache."""
    location = parse_uri(destination)
    if not is_local_host(location.host):
        return []
    if location.scheme == "file":
        root = None
        server_here = is_local_host(server.rpartition(":")[0])
    elif location.scheme in ("ftp", "ftps") and ftp_root.rstrip("/"):
        root, server_here = ftp_root, False
    else:
        return []
    checks = []
    for item in dicts_with(dict(result), "uri"):
        expected = from_data(item)
        uri = str(item["uri"])
        if expected is None or "://" in uri:
            continue
        path = os.path.join(root, uri.lstrip("/")) if root is not None else uri
        if server_here or os.path.exists(path):
            checks.append(LocalCheck(path, expected))
    if server_here and root is None and verified_by and all(c.expected.method == verified_by for c in checks):
        # the size still shows a server that wrote somewhere else (a container with other mounts)
        return [LocalCheck(check.path, Digest(check.expected.size)) for check in checks]
    return checks


def verify(checks: list[LocalCheck]) -> str | None:
    """Read each file back; delete those that do not match. The first problem (expected vs
    found), or None when all match."""
    problem = None
    for check in checks:
        try:
            verify_file(check.path, check.expected, f"the delivered copy {check.path}")
        except ChecksumMismatch as err:
            problem = problem or str(err)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(check.path)
            LOG.debug("Deleted %s: %s", check.path, err)
        except OSError as err:
            problem = problem or f"the delivered copy {check.path} cannot be read: {err.strerror or err}"
    return problem
