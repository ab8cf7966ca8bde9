"""A mover that keeps files in this process's memory, keyed by ``host/path``.

Useful in tests of code that uses movers, and as a template: a mover implements ``_put``,
``_get`` and ``_delete``; the base class handles the destination rule, retries, atomic
local downloads and error messages. Local paths arrive as ``str``; keep them that way (``open()``,
``os.path``): a ``pathlib.Path`` per file leaks its interned name on Python 3.12.
"""

from __future__ import annotations

import logging
import threading

from trollmoves_core.mover import Mover, ProgressCallback
from trollmoves_core.uri import Location

LOG = logging.getLogger(__name__)

STORE: dict[str, bytes] = {}
_LOCK = threading.Lock()
BLOCK = 1024 * 1024
"""Bytes moved per step. Report each block to ``progress`` as it goes: a bandwidth limit
(:mod:`trollmoves_core.bwlimit`) is taken there, and may make the call wait."""


class MemoryMover(Mover):
    """``memory://bucket/path``: files live in :data:`STORE` until the process ends."""

    NAME = "memory"
    SCHEMES = ("memory",)

    def _put(self, local_path: str, target: Location, progress: ProgressCallback | None) -> None:
        blocks = []
        with open(local_path, "rb") as source:
            while block := source.read(BLOCK):
                blocks.append(block)
                if progress:
                    progress(len(block))
        data = b"".join(blocks)  # stored whole at the end: an aborted transfer stores nothing
        with _LOCK:
            STORE[_key(target)] = data
        LOG.info("%s now holds %d bytes", target, len(data))

    def _get(self, source: Location, local_path: str, progress: ProgressCallback | None) -> None:
        with _LOCK:
            try:
                data = STORE[_key(source)]
            except KeyError:
                raise FileNotFoundError(f"no such object: {source}") from None
        with open(local_path, "wb") as sink:
            view = memoryview(data)
            for start in range(0, len(view), BLOCK):
                sink.write(block := view[start:start + BLOCK])
                if progress:
                    progress(len(block))

    def _delete(self, location: Location) -> None:
        with _LOCK:
            if STORE.pop(_key(location), None) is None:
                raise FileNotFoundError(f"no such object: {location}")

    def _size(self, location: Location) -> int | None:  # optional: the progress bar's total on a get
        with _LOCK:
            data = STORE.get(_key(location))
        return None if data is None else len(data)


def _key(location: Location) -> str:
    return location.host + location.path
