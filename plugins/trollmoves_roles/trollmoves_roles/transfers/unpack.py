"""Unpacking of archives and compressed files (``compression``): bz2, gzip, tar, zip, xrit.

:func:`unpack` extracts everything into a hidden ``.trollmoves_*`` directory inside the
destination directory, then renames each file into place, so no half-written file ever carries
its final name and a refused archive leaves nothing behind. Archive members with absolute names
or ``..`` are refused (the whole archive). Every failure is an :class:`UnpackError`.
"""

from __future__ import annotations

import bz2
import gzip
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Collection
from pathlib import Path, PurePosixPath
from typing import IO

LOG = logging.getLogger(__name__)

KINDS = {"bz2": "bz2", "bzip": "bz2", "bzip2": "bz2", "gzip": "gzip", "gz": "gzip", "tar": "tar", "zip": "zip",
         "xrit": "xrit"}
"""Accepted kind names (the spellings of both roles' configs) → the extractor used."""

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz")
SUFFIXES = {"bz2": (".bz2", ".bz"), "gzip": (".gz", ".gzip"), "tar": TAR_SUFFIXES, "zip": (".zip",), "xrit": ("C_",)}
"""The name endings of a file packed with each kind."""

BLOCK_SIZE = 1024 * 1024
MIN_BLOCK_SIZE = 64 * 1024
XRIT_TIMEOUT = 600.0


class UnpackError(Exception):
    """The file could not be unpacked; the message names it and the cause."""


def is_packed(name: str, kind: str) -> bool:
    """Whether ``name`` looks packed with ``kind`` (a ``.tar.gz`` is a tar, not a gzip)."""
    if kind not in KINDS:
        raise UnpackError(f"cannot unpack {name}: unknown compression {kind!r}")
    kind = KINDS[kind]
    if kind in ("bz2", "gzip") and name.endswith(TAR_SUFFIXES):
        return False
    return any(name.endswith(suffix) and len(name) > len(suffix) for suffix in SUFFIXES[kind])


def unpack(path: Path, kind: str, directory: Path, *, program: str | None = None, block_size: int = BLOCK_SIZE,
           delete: bool = False, members: Collection[str] | None = None) -> list[Path]:
    """Unpack ``path`` with ``kind`` into ``directory``; return the files written, sorted.

    ``program`` is the xRITDecompress executable (``xrit``), ``block_size`` the read size of
    bz2/gzip (at least 64 KiB). ``members`` (tar, zip) extracts only these members, each of which
    must be in the archive. With ``delete``, ``path`` is removed once unpacked (a failure to
    remove it is only logged). Raises :class:`UnpackError`, also when nothing was extracted.
    """
    extract = _EXTRACTORS.get(KINDS.get(kind, ""))
    if extract is None:
        raise UnpackError(f"cannot unpack {path}: unknown compression {kind!r}")
    try:
        staging = Path(tempfile.mkdtemp(prefix=".trollmoves_", dir=directory))
    except OSError as err:
        raise UnpackError(f"cannot unpack {path} into {directory}: {err}") from err
    try:
        extract(path, staging, program=program, block_size=max(block_size, MIN_BLOCK_SIZE), members=members)
        outputs = _move_into_place(staging, directory)
    except UnpackError:
        raise
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile, ValueError) as err:
        raise UnpackError(f"cannot unpack {path} ({kind}): {err}") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not outputs:
        raise UnpackError(f"cannot unpack {path} ({kind}): nothing extracted")
    if delete:
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            LOG.warning("Cannot delete %s after unpacking: %s", path, err)
    return outputs


def _move_into_place(staging: Path, directory: Path) -> list[Path]:
    outputs = []
    for root, _dirs, files in os.walk(staging):
        for name in files:
            extracted = Path(root, name)
            final = directory / extracted.relative_to(staging)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(extracted, final)
            outputs.append(final)
    return sorted(outputs, key=str)


def _check_member(name: str, archive: Path) -> None:
    member = PurePosixPath(name)
    if member.is_absolute() or ".." in member.parts or not member.parts:
        raise UnpackError(f"cannot unpack {archive}: member {name!r} would land outside the destination")


def _stream(kind: str, opener: Callable[..., IO[bytes]]) -> Callable[..., None]:
    """An extractor of one compressed file: its name without the kind's suffix (or plus ``.unpacked``)."""
    def extract(path: Path, staging: Path, *, block_size: int, **_: object) -> None:
        name = next((path.name[: -len(s)] for s in SUFFIXES[kind] if path.name.endswith(s) and path.name != s),
                    path.name + ".unpacked")
        with opener(path, "rb") as packed, open(staging / name, "wb") as plain:
            shutil.copyfileobj(packed, plain, block_size)
    return extract


def _selected(names: list[str], wanted: Collection[str] | None, archive: Path) -> set[str]:
    """The member names to extract: all, or ``wanted`` (each must be there)."""
    if wanted is None:
        return set(names)
    missing = sorted(set(wanted) - set(names))
    if missing:
        raise UnpackError(f"cannot unpack {archive}: no member {missing[0]!r} in it")
    return set(wanted)


def _tar(path: Path, staging: Path, *, members: Collection[str] | None = None, **_: object) -> None:
    with tarfile.open(path) as archive:
        files = [member for member in archive.getmembers() if member.isfile()]
        chosen = _selected([member.name for member in files], members, path)
        extracted = [member for member in files if member.name in chosen]
        for member in extracted:
            _check_member(member.name, path)
        archive.extractall(staging, members=extracted, filter="data")


def _zip(path: Path, staging: Path, *, members: Collection[str] | None = None, **_: object) -> None:
    with zipfile.ZipFile(path) as archive:
        files = [info for info in archive.infolist() if not info.is_dir()]
        chosen = _selected([info.filename for info in files], members, path)
        extracted = [info for info in files if info.filename in chosen]
        for info in extracted:
            _check_member(info.filename, path)
        for info in extracted:
            archive.extract(info, staging)


def _xrit(path: Path, staging: Path, *, program: str | None, **_: object) -> None:
    """Run xRITDecompress on the file, in ``staging``: it writes the name with its last 2 characters as ``__``."""
    if not program:
        raise UnpackError(f"cannot unpack {path}: compression = xrit needs the xRITDecompress program")
    try:
        result = subprocess.run([program, str(path.resolve())], cwd=staging, capture_output=True,
                                timeout=XRIT_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UnpackError(f"cannot unpack {path} with {program}: {err}") from err
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise UnpackError(f"{program} failed on {path} (status {result.returncode}): "
                          f"{message[-1] if message else 'no message'}")
    expected = path.name[:-2] + "__"
    if not (staging / expected).is_file():
        raise UnpackError(f"{program} did not write {expected} from {path}")


_EXTRACTORS: dict[str, Callable[..., None]] = {
    "bz2": _stream("bz2", bz2.open), "gzip": _stream("gzip", gzip.open), "tar": _tar, "zip": _zip, "xrit": _xrit,
}
