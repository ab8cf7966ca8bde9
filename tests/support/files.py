"""Writing input files as producers do, and checking what arrived."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def put_file(path: Path, content: bytes = b"payload\n") -> Path:
    """Write ``content`` under a hidden name the watched patterns ignore, then rename it to ``path``."""
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_bytes(content)
    os.replace(tmp, path)
    return path


def write_file(directory: Path, name: str, content: bytes) -> Path:
    """:func:`put_file` of ``content`` as ``directory/name``."""
    return put_file(directory / name, content)


def sha256(path: Path) -> str:
    """The hex SHA-256 of the file at ``path``."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def payload(i: int) -> bytes:
    """Distinct content for file number ``i``: 32 random bytes and a line repeated 1 to 9 times."""
    return os.urandom(32) + f"payload {i}\n".encode() * (i % 9 + 1)
