"""Remember recent events by key, for a while and up to a number of them.

Roles remember, per file, that they have seen it (watchers), pushed it (the server) or
received it (the client), for minutes or for tens of thousands of files. :func:`key_of` turns
the text naming the event into a 128-bit int, so that what is held does not depend on how long
the paths are.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict


def key_of(text: str) -> int:
    """The 128-bit key of ``text`` (BLAKE2b): two different texts never share one in practice
    (the chance is about 2⁻¹¹² per lookup with 65,536 keys held)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).digest())


class RecentKeys:
    """Keys, each forgotten ``seconds`` after it was added (never, with ``None``), when more
    than ``capacity`` are held (oldest first), or when discarded. Not thread-safe.

    Adding a key held already changes nothing (its age and value are kept). Each key carries
    the ``value`` it was added with (:meth:`get`; 0 by default).
    """

    __slots__ = ("_held", "capacity", "seconds")

    def __init__(self, seconds: float | None, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.seconds = seconds
        self.capacity = capacity
        self._held: OrderedDict[int, tuple[float, int]] = OrderedDict()
        """(time added, value) per key, oldest first."""

    def add(self, key: int, now: float | None = None, value: int = 0) -> bool:
        """Remember ``key`` (with ``value``); False when it was remembered already."""
        now = self._expire(now)
        if key in self._held:
            return False
        if len(self._held) >= self.capacity:
            self._held.popitem(last=False)
        self._held[key] = (now, value)
        return True

    def holds(self, key: int, now: float | None = None) -> bool:
        """Whether ``key`` is remembered now (keys past their age are forgotten first)."""
        return self.get(key, now) is not None

    def get(self, key: int, now: float | None = None) -> int | None:
        """The value of ``key`` if it is remembered now, else None."""
        self._expire(now)
        held = self._held.get(key)
        return None if held is None else held[1]

    def discard(self, key: int, now: float | None = None) -> bool:
        """Forget ``key`` now; whether it was remembered (keys past their age are forgotten first)."""
        self._expire(now)
        return self._held.pop(key, None) is not None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int) and self.holds(key)

    def __len__(self) -> int:
        return len(self._held)

    def _expire(self, now: float | None) -> float:
        """Forget the keys older than ``seconds`` at ``now`` (default: the monotonic clock); ``now``."""
        if self.seconds is None:
            return 0.0
        now = time.monotonic() if now is None else now
        held = self._held
        while held:
            key, (added, _) = next(iter(held.items()))
            if now - added <= self.seconds:
                break
            del held[key]
        return now
