"""``compression`` on a mirror section, as a server does it: each new file is unpacked before it
is (re-)announced, and the unpacked file(s) are what is announced and served.

The mirror fetches a new file from an internal server as soon as it is announced (not on the
first external request), acks it, unpacks it with :func:`trollmoves_roles.transfers.unpack.unpack`
into a fresh hidden directory next to the staging directories, and announces the result as the
server would (one ``file``, or a ``dataset`` for an archive of several). The unpacked files are
removed ``remove_delay`` seconds after the announcement or their last delivery. A fetch or unpack
that fails is logged and nothing is announced.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trollmoves_roles.mirror.staging import FETCH_PREFIX
from trollmoves_roles.transfers.unpack import unpack

SOURCE_FILE_KEYS = ("uri", "uid", "path", "filesystem", "dataset", "collection")
"""Keys of an internal announcement that described the packed file(s), replaced in the re-announcement."""


def unpack_staged(paths: Iterable[str], kind: str, program: str | None, base: str) -> tuple[str, list[str]]:
    """Unpack every staged file into a fresh hidden directory in ``base``: ``(directory, files)``.

    Raises :class:`~trollmoves_roles.transfers.unpack.UnpackError` (or OSError); nothing is left then.
    """
    directory = tempfile.mkdtemp(prefix=FETCH_PREFIX, dir=base)
    try:
        outputs = [str(out) for path in paths for out in unpack(Path(path), kind, Path(directory), program=program)]
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return directory, outputs


def unpacked_announcement(data: dict[str, Any], files: list[str]) -> tuple[str, dict[str, Any]]:
    """Message type and data announcing ``files`` instead of the packed file(s) of ``data``, as a
    server with ``compression`` announces them: ``file`` with ``uri``/``uid``, or a ``dataset``."""
    result = {k: v for k, v in data.items() if k not in SOURCE_FILE_KEYS}
    if len(files) == 1:
        return "file", {**result, "uri": files[0], "uid": os.path.basename(files[0])}
    return "dataset", {**result, "dataset": [{"uri": path, "uid": os.path.basename(path)} for path in files]}
