"""The ``file://`` mover: local copies, moves and links, always atomic."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

from trollmoves_core.bwlimit import chunk_size, untimed
from trollmoves_core.checksum import Digest, Hasher, file_digest, read_buffer
from trollmoves_core.mover import Mover, ProgressCallback
from trollmoves_core.uri import Location

MODES = ("hardlink", "copy", "move", "symlink")
_CHUNK = 64 * 1024 * 1024
_OVERLAP_FROM = 16 * 1024 * 1024
_OVERLAP_BLOCK = 4 * 1024 * 1024


class FileMover(Mover):
    """Deliver to a local (or locally mounted) path.

    Connection parameter ``mode`` chooses how (upstream's behaviour is the default):

    * ``hardlink``: hard link, falling back to a copy across file systems;
    * ``copy``: copy data and timestamps;
    * ``move``: rename, falling back to copy-then-delete across file systems;
    * ``symlink``: symbolic link to the absolute source path.

    The result always appears under a hidden temporary name first and is then renamed, so
    readers never see a partial file. Missing directories are created. The host part of a
    ``file://host/path`` URI is ignored, as upstream does: upstream clients name their own
    host there, and the path is read as one on this machine (or a shared file system).
    """

    NAME = "file"
    SCHEMES = ("file",)

    def __init__(self, connection_params: Any = None) -> None:
        super().__init__(connection_params)
        self.mode = str(self.params.get("mode", "hardlink"))
        if self.mode not in MODES:
            raise ValueError(f"file mover: unknown mode {self.mode!r}, choose one of {', '.join(MODES)}")

    def _put(self, local_path: str, target: Location, progress: ProgressCallback | None) -> None:
        self._put_verified(local_path, target, progress, None)

    def _put_verified(self, local_path: str, target: Location, progress: ProgressCallback | None,
                      expected: Digest | None) -> bool:
        """A copy is hashed as it is stored and checked before the rename (True: the stored bytes
        are the announced ones); a link or a move keeps the very bytes announced unless the file
        was rewritten in place, which its size shows (False: only the size was checked)."""
        final = target.path
        os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
        partial = self.temporary_name(final)
        try:
            hasher = self._materialise(local_path, partial, progress, expected)
            if expected is not None:
                found = hasher.digest() if hasher is not None else Digest(os.stat(partial).st_size)
                if hasher is not None and expected.mismatch(found) \
                        and not expected.mismatch(file_digest(local_path, expected.method)):
                    self.check_written(found, expected, final)  # the source is right: the copy went bad
                self.check_source(found, expected)
            os.replace(partial, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
        if self.mode == "move" and os.path.exists(local_path) and not os.path.samefile(local_path, final):
            os.unlink(local_path)
        return expected is not None and expected.method is not None and hasher is not None

    def _materialise(self, source: str, partial: str, progress: ProgressCallback | None,
                     expected: Digest | None = None) -> Hasher | None:
        """Make ``partial``; the hash of what was copied when ``expected`` asked for one."""
        if self.mode == "symlink":
            os.symlink(os.path.realpath(source), partial)
            return None
        if self.mode in ("hardlink", "move"):
            try:
                if self.mode == "move":
                    os.rename(source, partial)
                else:
                    os.link(source, partial)
                if (report := untimed(progress)) is not None:  # no bytes moved: no bandwidth limit applies
                    report(os.stat(partial).st_size)
                return None
            except OSError:
                pass  # another file system or no link support: copy instead
        if expected is not None:
            return hashing_copy(source, partial, expected.method, progress)
        copy_file(source, partial, progress)
        return None

    def _get(self, source: Location, local_path: str, progress: ProgressCallback | None) -> None:
        copy_file(source.path, local_path, progress)

    def _delete(self, location: Location) -> None:
        os.unlink(location.path)

    def _size(self, location: Location) -> int | None:
        return os.path.getsize(location.path)


def hashing_copy(source: str, dest: str, method: str | None,
                 progress: ProgressCallback | None = None) -> Hasher:
    """Copy data and timestamps as :func:`copy_file` does; the hash of what ``dest`` holds.

    A small file is hashed on its way (one read, one write). From :data:`_OVERLAP_FROM` bytes on,
    the kernel copies each block (as :func:`copy_file` does) and a second thread reads the block
    back from ``dest`` and hashes it while the next one is copied: the digest is that of the
    bytes stored, at the cost of one hash pass beside a copy as fast as ``cp``'s."""
    hasher = Hasher(method)
    with open(source, "rb", buffering=0) as src, open(dest, "w+b", buffering=0) as dst:
        size = os.fstat(src.fileno()).st_size
        if size >= _OVERLAP_FROM:
            _overlapped_copy(src, dst, hasher, chunk_size(progress, _OVERLAP_BLOCK), progress)
        else:
            buffer = read_buffer(chunk_size(progress, size))
            view = memoryview(buffer)
            while count := src.readinto(buffer):
                chunk = view[:count]
                hasher.update(chunk)
                _write_all(dst, chunk)
                if progress:
                    progress(count)
    shutil.copystat(source, dest)
    return hasher


def _overlapped_copy(src: BinaryIO, dst: BinaryIO, hasher: Hasher, block: int,
                     progress: ProgressCallback | None) -> None:
    """Kernel-copy ``src`` to its end, block by block; block i is read back from ``dst`` and hashed
    (hashlib releases the GIL) while block i + 1 is copied. The hash of block i - 1 is waited for
    before block i's starts, so the blocks are hashed in order through one buffer."""
    buffer = memoryview(bytearray(block))
    with ThreadPoolExecutor(1, thread_name_prefix="hash") as hashing:
        hashed: Future[None] | None = None
        for offset, count in _kernel_copy(src, dst, block, progress):
            if hashed is not None:
                hashed.result()
            hashed = hashing.submit(_hash_back, dst.fileno(), offset, count, buffer, hasher)
        if hashed is not None:
            hashed.result()


def _hash_back(fd: int, offset: int, count: int, buffer: memoryview, hasher: Hasher) -> None:
    """Read ``count`` bytes at ``offset`` of ``fd`` back into ``buffer`` and hash them."""
    while count:
        got = os.preadv(fd, [buffer[:count]], offset)
        if got == 0:
            raise OSError(f"the copy is {offset} bytes long, shorter than was written")
        hasher.update(buffer[:got])
        offset += got
        count -= got


def _kernel_copy(src: BinaryIO, dst: BinaryIO, block: int,
                 progress: ProgressCallback | None) -> Iterator[tuple[int, int]]:
    """Copy ``src`` to ``dst`` up to the end of ``src`` (a file still growing is copied as far as it
    goes), ``block`` bytes at a time, with the kernel's zero-copy path (``sendfile``) or, where that
    is not supported, through a buffer; yields each block's offset and length once it is written."""
    offset = 0
    while True:
        try:
            sent = os.sendfile(dst.fileno(), src.fileno(), offset, block)
        except OSError:
            if offset:  # failed midway: let the caller drop the partial file
                raise
            break  # sendfile unsupported on this pair
        if not sent:
            return
        if progress:
            progress(sent)
        yield offset, sent
        offset += sent
    buffer = memoryview(bytearray(min(block, 1024 * 1024)))
    while count := src.readinto(buffer):
        _write_all(dst, buffer[:count])
        if progress:
            progress(count)
        yield offset, count
        offset += count


def _write_all(dst: BinaryIO, chunk: memoryview) -> None:
    written = 0
    while written < len(chunk):
        written += dst.write(chunk[written:])


def copy_file(source: str | os.PathLike[str], dest: str | os.PathLike[str],
              progress: ProgressCallback | None = None) -> None:
    """Copy data with the kernel's zero-copy path, then the timestamps and mode.

    Under a bandwidth limit (``progress`` a :class:`~trollmoves_core.bwlimit.Throttle`) the
    kernel copies small blocks, each one paid for before the next."""
    with open(source, "rb", buffering=0) as src, open(dest, "wb", buffering=0) as dst:
        for _ in _kernel_copy(src, dst, chunk_size(progress, _CHUNK), progress):
            pass
    shutil.copystat(source, dest)
