"""Server-side unpacking (``compression``) before a file is announced.

Each output appears atomically: written under a hidden temporary name in the working
directory, then renamed. Archive members with absolute paths or ``..`` are refused.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import logging
import os
import secrets
import shutil
import subprocess
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO

LOG = logging.getLogger(__name__)

XRIT_TIMEOUT = 600.0


class UnpackError(Exception):
    """The file could not be unpacked; the message names it and the cause."""


def unpack(path: Path, kind: str, workdir: Path, prog: str | None = None) -> list[Path]:
    """Unpack ``path`` with ``kind`` (bz2, gzip, tar, zip, xrit) into ``workdir``; return the outputs."""
    try:
        if kind == "bz2":
            return [_stream(path, workdir / _strip_suffix(path.name, (".bz2", ".bz")), bz2.open)]
        if kind == "gzip":
            return [_stream(path, workdir / _strip_suffix(path.name, (".gz", ".gzip")), gzip.open)]
        if kind == "tar":
            return _untar(path, workdir)
        if kind == "zip":
            return _unzip(path, workdir)
        if kind == "xrit":
            return [_xrit(path, workdir, prog or "xRITDecompress")]
    except UnpackError:
        raise
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile, ValueError) as err:
        raise UnpackError(f"cannot unpack {path} ({kind}): {err}") from err
    raise UnpackError(f"cannot unpack {path}: unknown compression {kind!r}")


def _strip_suffix(name: str, suffixes: tuple[str, ...]) -> str:
    for suffix in suffixes:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name + ".unpacked"


def _atomic_write(target: Path, write: Callable[[IO[bytes]], None]) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        with open(partial, "wb") as out:
            write(out)
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return target


def _stream(path: Path, target: Path, opener: Callable[..., IO[bytes]]) -> Path:
    def write(out: IO[bytes]) -> None:
        with opener(path, "rb") as src:
            shutil.copyfileobj(src, out, 1024 * 1024)
    return _atomic_write(target, write)


def _safe_member(name: str, archive: Path) -> PurePosixPath:
    member = PurePosixPath(name)
    if member.is_absolute() or ".." in member.parts or not member.parts:
        raise UnpackError(f"cannot unpack {archive}: unsafe member name {name!r}")
    return member


def _untar(path: Path, workdir: Path) -> list[Path]:
    outputs = []
    with tarfile.open(path) as archive:
        for info in archive:
            if not info.isfile():
                continue
            target = workdir / _safe_member(info.name, path)
            source = archive.extractfile(info)
            if source is None:
                continue
            with source:
                outputs.append(_atomic_write(target, lambda out, s=source: shutil.copyfileobj(s, out, 1024 * 1024)))
    return outputs


def _unzip(path: Path, workdir: Path) -> list[Path]:
    outputs = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            target = workdir / _safe_member(info.filename, path)
            with archive.open(info) as source:
                outputs.append(_atomic_write(target, lambda out, s=source: shutil.copyfileobj(s, out, 1024 * 1024)))
    return outputs


def _xrit(path: Path, workdir: Path, prog: str) -> Path:
    """Run the xRITDecompress tool in ``workdir``; its output replaces the name's last 2 characters with ``__``."""
    target = workdir / (path.name[:-2] + "__")
    try:
        result = subprocess.run([prog, str(path.resolve())], cwd=workdir, capture_output=True, timeout=XRIT_TIMEOUT,
                                check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UnpackError(f"cannot unpack {path} with {prog}: {err}") from err
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise UnpackError(f"{prog} failed on {path} (status {result.returncode}): "
                          f"{message[-1] if message else 'no message'}")
    if not target.is_file():
        raise UnpackError(f"{prog} did not produce {target} from {path}")
    return target
