"""The data of the server's announcements, in upstream's key order."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trollmoves_roles.server.config import ChainConfig

MESSAGE_VERSION = "v1.2"
"""Upstream's posttroll always writes v1.2; we do too, so peers see one format."""

SSH_FILESYSTEM_CLS = "fsspec.implementations.sftp.SFTPFileSystem"
ARCHIVE_FILESYSTEM_CLS = {"tar": "fsspec.implementations.tar:TarFileSystem",
                          "zip": "fsspec.implementations.zip:ZipFileSystem"}


def announcement(chain: ChainConfig, fields: dict[str, Any], files: list[Path],
                 request_address: str) -> tuple[str, dict[str, Any]]:
    """Message type and data for files served on request.

    One file: info fields, parsed fields, ``uri``, ``uid``, ``request_address``. Several (an
    unpacked archive): ``dataset`` with one ``uri``/``uid`` dict per file instead of the pair.
    """
    data: dict[str, Any] = {**chain.info, **fields}
    if len(files) == 1:
        data["uri"] = str(files[0])
        data["uid"] = files[0].name
        atype = "file"
    else:
        data["dataset"] = [{"uri": str(path), "uid": path.name} for path in files]
        atype = "dataset"
    data["request_address"] = request_address
    return atype, data


def standalone_announcement(chain: ChainConfig, fields: dict[str, Any], path: Path,
                            members: list[str] | None = None, host: str | None = None) -> tuple[str, dict[str, Any]]:
    """Message type and data for standalone chains: URIs readable over ssh plus the fsspec
    file system description (``AbstractFileSystem.to_json`` form), as upstream publishes them.

    ``members`` (with ``unpack``) lists the archive members: a ``dataset`` of ``tar://member::ssh://...``.
    """
    host = host or socket.gethostname()
    remote = f"ssh://{host}{path}"
    if chain.unpack and members is not None:
        filesystem = {"cls": ARCHIVE_FILESYSTEM_CLS[chain.unpack], "protocol": chain.unpack, "args": [],
                      "fo": str(path), "target_protocol": "ssh", "target_options": {"host": host}}
        data: dict[str, Any] = {"dataset": [
            {"filesystem": filesystem, "uri": f"{chain.unpack}://{member}::{remote}", "uid": f"{chain.unpack}://{member}"}
            for member in members]}
        return "dataset", {**data, **chain.info, **fields}
    filesystem = {"cls": SSH_FILESYSTEM_CLS, "args": [], "host": host, "protocol": "ssh"}
    return "file", {"filesystem": filesystem, "uri": remote, "uid": remote, **chain.info, **fields}


def file_dicts(data: Any) -> Iterator[dict[str, Any]]:
    """Every dict, at any depth, that has a ``uri`` (the files a message or request names)."""
    if isinstance(data, dict):
        if "uri" in data:
            yield data
        for key, value in data.items():
            if key != "uri":
                yield from file_dicts(value)
    elif isinstance(data, list):
        for value in data:
            yield from file_dicts(value)
