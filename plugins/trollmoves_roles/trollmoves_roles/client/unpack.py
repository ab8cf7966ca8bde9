"""Client-side unpacking of delivered files (``compression``), on :mod:`trollmoves_roles.transfers.unpack`.

The files are unpacked beside the delivered file. Files whose name does not look like the
configured kind are left alone. The result message names the unpacked files.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from trollmoves_core.checksum import INTEGRITY_KEY, SIZE_KEY, file_digest, from_data
from trollmoves_roles.transfers.unpack import UnpackError, is_packed, unpack

LOG = logging.getLogger(__name__)

__all__ = ["UnpackError", "unpack_file", "unpack_message"]


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
        method = _method(data)
        if len(files) == 1:
            data["uid"], data["uri"] = files[0]
            data.update(_digest(files[0][1], method))
        else:
            for key in ("uid", "uri", SIZE_KEY, INTEGRITY_KEY):
                data.pop(key, None)
            data["dataset"] = [{"uid": uid, "uri": uri, **_digest(uri, method)} for uid, uri in files]
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
                method = _method(item)
                items += [{**item, "uid": uid, "uri": uri, **_digest(uri, method)} for uid, uri in files]
        data["dataset"] = items
    return data


def _method(data: dict[str, Any]) -> str | None:
    """The checksum method of a packed file's dict, for its unpacked files; None without one."""
    announced = from_data(data)
    data.pop(SIZE_KEY, None)
    data.pop(INTEGRITY_KEY, None)
    return announced.method if announced is not None else None


def _digest(path: str, method: str | None) -> dict[str, Any]:
    """Size and checksum of an unpacked file, by the method the packed one was announced with."""
    if method is None:
        return {}
    try:
        return file_digest(path, method).as_data()
    except OSError:
        return {}


def unpack_file(path: str, kind: str, *, delete: bool = False, xrit_program: str | None = None,
                block_size: int = 1024) -> list[tuple[str, str]] | None:
    """Unpack the local file ``path``; return ``[(uid, path), ...]`` or None if it is not of ``kind``."""
    if "://" in path:
        LOG.warning("Cannot unpack %s: not a local file", path)
        return None
    source = Path(path)
    if not is_packed(source.name, kind):
        return None
    if kind == "xrit" and not xrit_program:
        raise UnpackError(f"cannot unpack {path}: compression = xrit needs xritdecompressor "
                          "(the xRITDecompress program)")
    outputs = unpack(source, kind, source.parent, program=xrit_program, block_size=block_size, delete=delete)
    LOG.debug("Unpacked %s into %d file(s)", path, len(outputs))
    return [(output.name, str(output)) for output in outputs]
