"""The data of the server's announcements, in upstream's key order."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import Any

from trollmoves_core.checksum import Digest
from trollmoves_roles.server.config import ServerChainConfig

SSH_FILESYSTEM_CLS = "fsspec.implementations.sftp.SFTPFileSystem"
ARCHIVE_FILESYSTEM_CLS = {"tar": "fsspec.implementations.tar:TarFileSystem",
                          "zip": "fsspec.implementations.zip:ZipFileSystem"}


def announcement(chain: ServerChainConfig, fields: dict[str, Any], files: Sequence[str | os.PathLike[str]],
                 request_address: str, digests: Sequence[Digest | None] | None = None) -> tuple[str, dict[str, Any]]:
    """Message type and data for files served on request.

    One file: info fields, parsed fields, ``uri``, ``uid``, ``request_address``. Several (an
    unpacked archive): ``dataset`` with one ``uri``/``uid`` dict per file instead of the pair.
    With ``digests`` (one per file), each file's dict also has ``size`` and ``integrity``.
    """
    data: dict[str, Any] = {**chain.info, **fields}
    paths = [os.fspath(file) for file in files]
    extras = [{} if d is None else d.as_data() for d in (digests or [None] * len(paths))]
    if len(paths) == 1:
        data["uri"] = paths[0]
        data["uid"] = os.path.basename(paths[0])
        atype = "file"
    else:
        data["dataset"] = [{"uri": path, "uid": os.path.basename(path), **extra}
                           for path, extra in zip(paths, extras, strict=True)]
        atype = "dataset"
    data["request_address"] = request_address
    if atype == "file":
        data.update(extras[0])  # after upstream's keys, in upstream's order
    return atype, data


def standalone_announcement(chain: ServerChainConfig, fields: dict[str, Any], path: str | os.PathLike[str],
                            members: list[str] | None = None, host: str | None = None, *,
                            digest: Digest | None = None) -> tuple[str, dict[str, Any]]:
    """Message type and data for standalone chains: URIs readable over ssh plus the fsspec
    file system description (``AbstractFileSystem.to_json`` form), as upstream publishes them.

    ``members`` (with ``unpack``) lists the archive members: a ``dataset`` of ``tar://member::ssh://...``.
    ``digest`` (a single file's) adds ``size`` and ``integrity``.
    """
    host = host or socket.gethostname()
    remote = f"ssh://{host}{os.fspath(path)}"
    if chain.unpack and members is not None:
        filesystem = {"cls": ARCHIVE_FILESYSTEM_CLS[chain.unpack], "protocol": chain.unpack, "args": [],
                      "fo": os.fspath(path), "target_protocol": "ssh", "target_options": {"host": host}}
        data: dict[str, Any] = {"dataset": [
            {"filesystem": filesystem, "uri": f"{chain.unpack}://{member}::{remote}", "uid": f"{chain.unpack}://{member}"}
            for member in members]}
        return "dataset", {**data, **chain.info, **fields}
    filesystem = {"cls": SSH_FILESYSTEM_CLS, "args": [], "host": host, "protocol": "ssh"}
    extra = digest.as_data() if digest is not None else {}
    return "file", {"filesystem": filesystem, "uri": remote, "uid": remote, **chain.info, **fields, **extra}
