"""File size and checksum: computed once, carried in messages, verified where a file lands.

A :class:`Digest` is a file's ``size`` and its checksum by one ``method`` (``sha256`` or
``sha512``), the value base64-encoded as in WIS2 notification messages. In a message it is two
keys of the file's dict (extra keys upstream peers ignore)::

    "size": 1234, "integrity": {"method": "sha256", "value": "<base64 of the digest>"}

:class:`Hasher` hashes data as it streams past (a mover's copy), so that verifying costs no
second read; :func:`file_digest` reads a file once. A mismatch is a
:class:`ChecksumMismatch`, a :class:`~trollmoves_core.exceptions.TransferError` whose text
names what was expected and what was found.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trollmoves_core.exceptions import TransferError

METHODS = ("sha256", "sha512")
"""Checksum methods a chain may choose (``checksum = sha256 | sha512 | none``)."""
DEFAULT_METHOD = "sha256"
SIZE_KEY = "size"
INTEGRITY_KEY = "integrity"
COPY_VERIFIED_KEY = "copy_verified"
"""A push reply's key (ours only; upstream peers ignore it): the method by which the server's mover
hashed every copy it stored and found it to be the announced file (``"sha256"``)."""
_BLOCK = 1024 * 1024
_MIN_BLOCK = 64 * 1024


def read_buffer(size: int) -> bytearray:
    """A buffer to read a file of ``size`` bytes through: one block of 1 MiB at most, but no bigger
    than the file needs (zeroing a 1 MiB buffer cost three times the hashing of a 10 KiB file)."""
    return bytearray(min(_BLOCK, max(size + 1, _MIN_BLOCK)))


class ChecksumMismatch(TransferError):
    """A file's size or checksum is not what its announcement says."""


@dataclass(frozen=True, slots=True)
class Digest:
    """A file's ``size`` in bytes and its checksum: ``method`` and the base64 ``value`` (None: size only)."""

    size: int
    method: str | None = None
    value: str | None = None

    def as_data(self) -> dict[str, Any]:
        """The message keys: ``size`` and, with a checksum, ``integrity``."""
        data: dict[str, Any] = {SIZE_KEY: self.size}
        if self.method and self.value:
            data[INTEGRITY_KEY] = {"method": self.method, "value": self.value}
        return data

    def mismatch(self, found: Digest) -> str | None:
        """Why ``found`` is not this file (expected vs found), or None when it matches as far as
        both know (a checksum is compared only when both have one by the same method)."""
        if found.size != self.size:
            return f"size {found.size} bytes, expected {self.size}"
        if self.method and self.value and found.method == self.method and found.value is not None \
                and not hmac.compare_digest(found.value, self.value):
            return f"{self.method} {found.value}, expected {self.value}"
        return None

    def describe(self) -> str:
        return f"{self.size} bytes" + (f", {self.method} {self.value}" if self.method else "")


def from_data(data: Mapping[str, Any]) -> Digest | None:
    """The :class:`Digest` a file's dict announces, or None when it has no ``integrity`` of a
    known method. ``size`` alone is not trusted: a message from another system may use the key
    for something else."""
    integrity = data.get(INTEGRITY_KEY)
    if not isinstance(integrity, Mapping):
        return None
    method, value, size = integrity.get("method"), integrity.get("value"), data.get(SIZE_KEY)
    if method not in METHODS or not isinstance(value, str) or not value:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return None
    return Digest(size, str(method), value)


class Hasher:
    """A running checksum (or just a byte count, with ``method`` None) of data streamed through."""

    def __init__(self, method: str | None) -> None:
        self.method = method
        self._hash = hashlib.new(method) if method else None
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.size += len(data)
        if self._hash is not None:
            self._hash.update(data)

    def digest(self) -> Digest:
        value = base64.b64encode(self._hash.digest()).decode() if self._hash is not None else None
        return Digest(self.size, self.method, value)


class HashingReader:
    """A binary file opened for reading whose data is hashed as it is read (by a mover's upload)."""

    def __init__(self, raw: Any, method: str | None) -> None:
        self._raw = raw
        self.hasher = Hasher(method)

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.hasher.update(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def file_digest(path: str | os.PathLike[str], method: str | None) -> Digest:
    """Size and checksum of the file at ``path``, in one read (just its size when ``method`` is None)."""
    with open(path, "rb") as source:
        if method is None:
            return Digest(os.fstat(source.fileno()).st_size)
        hasher = Hasher(method)
        buffer = read_buffer(os.fstat(source.fileno()).st_size)
        view = memoryview(buffer)
        while count := source.readinto(buffer):
            hasher.update(view[:count])
        return hasher.digest()


def check(found: Digest, expected: Digest | None, what: str, *, transient: bool = True) -> None:
    """Raise :class:`ChecksumMismatch` ``"<what>: <found>, expected <expected>"`` unless they match."""
    if expected is None:
        return
    problem = expected.mismatch(found)
    if problem:
        raise ChecksumMismatch(f"{what} does not match its announcement: {problem}", transient=transient)


def verify_file(path: str | os.PathLike[str], expected: Digest | None, what: str | None = None) -> None:
    """Check the file at ``path`` against ``expected`` (its size first: no read when that differs,
    nor when ``expected`` has no checksum)."""
    if expected is None:
        return
    label = what or os.fspath(path)
    check(Digest(os.path.getsize(path)), Digest(expected.size), label)
    if expected.method:
        check(file_digest(path, expected.method), expected, label)
