"""Reusable mover instances: one per mover class and connection parameters, so that
connections are pooled across files (every role that moves files uses it)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Hashable, Mapping
from typing import Any

from trollmoves_core.mover import Mover
from trollmoves_core.plugins import PluginHost

LOG = logging.getLogger(__name__)


def canonical(params: Mapping[str, Any] | None) -> str:
    """Connection parameters as canonical JSON: equal parameters give the same string."""
    return json.dumps(dict(params or {}), sort_keys=True, default=str)


class MoverCache:
    """One mover per (mover class, connection parameters), so connections are pooled across files."""

    def __init__(self, host: PluginHost) -> None:
        self._host = host
        self._movers: dict[Hashable, Mover] = {}
        self._lock = threading.Lock()

    def get(self, uri: str, params: Mapping[str, Any] | None = None, *, params_key: str | None = None) -> Mover:
        """The mover for ``uri``'s scheme with ``params``, created on first use.

        ``params_key`` is :func:`canonical` of ``params`` when the caller already has it.
        """
        cls = self._host.mover_class(uri)
        key = (cls, params_key if params_key is not None else canonical(params))
        with self._lock:
            mover = self._movers.get(key)
            if mover is None:
                mover = self._movers[key] = cls(dict(params or {}))
            return mover

    def __len__(self) -> int:
        """How many movers are held."""
        with self._lock:
            return len(self._movers)

    def close_all(self) -> None:
        """Close every mover (their pooled connections); the cache is empty afterwards."""
        with self._lock:
            movers, self._movers = list(self._movers.values()), {}
        for mover in movers:
            try:
                mover.close()
            except Exception as err:  # closing must not stop a shutdown
                LOG.debug("Closing %s failed: %s", type(mover).__name__, err)
