"""Client-side unpacking of delivered files (``compression``): tar, bzip, gzip, zip, xrit.

Everything is extracted into a hidden ``.trollmoves_*`` directory beside the delivered file
and then renamed into place, so no half-written file ever carries its final name. Files that
do not look like the configured kind (by name) are left alone. Archive members that would land
outside the destination directory (absolute names, ``..``) are refused.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz")


class UnpackError(Exception):
    """The delivered file could not be unpacked."""


def unpack_message(data: dict[str, Any], kind: str, *, delete: bool = False, xrit_program: str | None = None,
                   block_size: int = 1024) -> dict[str, Any]:
    """Unpack the local files of a result message; return the data describing the unpacked files.

    A single resulting file stays a ``file`` message (its ``uid``/``uri`` replaced); several make
    a ``dataset`` (top-level ``uid``/``uri`` removed), as upstream.
    """
    if "uri" in data:
        files = unpack_file(str(data["uri"]), kind, delete=delete, xrit_program=xrit_program, block_size=block_size)
        if files is None:
            return data
        if len(files) == 1:
            data["uid"], data["uri"] = files[0]
        else:
            data.pop("uid", None)
            data.pop("uri", None)
            data["dataset"] = [{"uid": uid, "uri": uri} for uid, uri in files]
        return data
    if isinstance(data.get("dataset"), list):
        items: list[Any] = []
        for item in data["dataset"]:
            files = None
            if isinstance(item, dict) and "uri" in item:
                files = unpack_file(str(item["uri"]), kind, delete=delete, xrit_program=xrit_program,
                                    block_size=block_size)
            if files is None:
                items.append(item)
            else:
                items += [{**item, "uid": uid, "uri": uri} for uid, uri in files]
        data["dataset"] = items
    return data


def unpack_file(path: str, kind: str, *, delete: bool = False, xrit_program: str | None = None,
                block_size: int = 1024) -> list[tuple[str, str]] | None:
    """Unpack the local file ``path``; return ``[(uid, path), ...]`` or None if it is not of ``kind``."""
    if "://" in path:
        LOG.warning("Cannot unpack %s: not a local file", path)
        return None
    unpacker = _UNPACKERS[kind]
    source = Path(path)
    if not unpacker.applies(source):
        return None
    workdir = Path(tempfile.mkdtemp(prefix=".trollmoves_", dir=source.parent))
    try:
        unpacker.extract(source, workdir, xrit_program=xrit_program, block_size=block_size)
        results = _move_into_place(workdir, source.parent)
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError, ValueError, subprocess.SubprocessError) as err:
        raise UnpackError(f"cannot unpack {path} ({kind}): {err}") from err
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if not results:
        raise UnpackError(f"cannot unpack {path} ({kind}): nothing extracted")
    if delete:
        source.unlink(missing_ok=True)
    LOG.debug("Unpacked %s into %d file(s)", path, len(results))
    return results


def _move_into_place(workdir: Path, target: Path) -> list[tuple[str, str]]:
    results = []
    for root, _dirs, files in os.walk(workdir):
        for name in sorted(files):
            extracted = Path(root, name)
            final = target / extracted.relative_to(workdir)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(extracted, final)
            results.append((name, str(final)))
    return sorted(results, key=lambda r: r[1])


class _Unpacker:
    def __init__(self, applies: Callable[[Path], bool], extract: Callable[..., None]) -> None:
        self.applies, self.extract = applies, extract


def _extract_tar(source: Path, workdir: Path, **_: Any) -> None:
    with tarfile.open(source) as archive:
        members = [m for m in archive.getmembers() if m.isfile()]
        for member in members:
            _check_member_name(member.name)
        archive.extractall(workdir, members=members, filter="data")


def _extract_zip(source: Path, workdir: Path, **_: Any) -> None:
    with zipfile.ZipFile(source) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            _check_member_name(info.filename)
            archive.extract(info, workdir)


def _check_member_name(name: str) -> None:
    parts = Path(name).parts
    if name.startswith("/") or ".." in parts:
        raise ValueError(f"archive member {name!r} would land outside the destination")


def _stream(opener: Callable[..., Any], suffix: str) -> Callable[..., None]:
    def extract(source: Path, workdir: Path, *, block_size: int = 1024, **_: Any) -> None:
        out = workdir / source.name[: -len(suffix)]
        with opener(source, "rb") as packed, open(out, "wb") as plain:
            shutil.copyfileobj(packed, plain, max(block_size, 64 * 1024))
    return extract


def _extract_xrit(source: Path, workdir: Path, *, xrit_program: str | None = None, **_: Any) -> None:
    if not xrit_program:
        raise ValueError("compression = xrit needs xritdecompressor (the xRITDecompress program)")
    expected = source.name[:-2] + "__"
    subprocess.run([xrit_program, f"-s:{source}"], cwd=workdir, check=True, capture_output=True, timeout=600)
    if not (workdir / expected).is_file():
        raise ValueError(f"{xrit_program} did not write {expected}")


_UNPACKERS: dict[str, _Unpacker] = {
    "tar": _Unpacker(lambda p: p.name.endswith(TAR_SUFFIXES), _extract_tar),
    "bzip": _Unpacker(lambda p: p.name.endswith(".bz2") and not p.name.endswith(TAR_SUFFIXES),
                      _stream(bz2.open, ".bz2")),
    "gzip": _Unpacker(lambda p: p.name.endswith(".gz") and not p.name.endswith(TAR_SUFFIXES),
                      _stream(gzip.open, ".gz")),
    "zip": _Unpacker(lambda p: p.name.endswith(".zip"), _extract_zip),
    "xrit": _Unpacker(lambda p: p.name.endswith("C_"), _extract_xrit),
}
