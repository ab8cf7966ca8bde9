"""Remember recent events by 128-bit key in flat arrays: no Python object per key.

Roles remember, per file, that they have seen it (watchers), pushed it (the server) or
received it (the client), for minutes or for tens of thousands of files. Held as Python ints
in a dict, each key costs about 100 bytes in small objects, and those objects, allocated
between the short-lived ones of the same burst, keep whole allocator pages from being given
back: the process grows burst after burst. :class:`RecentKeys` holds keys in two flat arrays
(a ring, oldest first) indexed by an open-addressing table of positions: about 24 bytes per
key at full capacity, in a few large blocks that shrink again when the keys are forgotten.
"""

from __future__ import annotations

import hashlib
import math
import time
from array import array
from collections import deque

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
"""2⁶⁴/φ: multiplying by it spreads keys whose low bits run in sequence over the index."""
_SMALLEST = 1024
"""Ring slots allocated at first; the ring grows by a quarter as needed, up to the capacity."""
_MAX_LOAD = 0.75
"""Most keys per index slot: linear probing stays short (about 2.5 probes per hit) below it."""


def key_of(text: str) -> int:
    """The 128-bit key of ``text`` (BLAKE2b): two different texts never share one in practice
    (the chance is about 2⁻¹¹² per lookup with 65,536 keys held)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).digest())


class RecentKeys:
    """128-bit keys, each forgotten ``seconds`` after it was added (never, with ``None``) or
    when more than ``capacity`` are held (oldest first). Not thread-safe.

    Adding a key held already changes nothing (its age is kept).
    """

    __slots__ = ("_buckets", "_count", "_head", "_hi", "_index", "_lo", "_mask", "_shift", "capacity", "seconds")

    def __init__(self, seconds: float | None, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.seconds = seconds
        self.capacity = capacity
        # [time, count] per run of keys added within one second: no time stored per key
        self._buckets: deque[list[float]] = deque()
        self._head = 0
        self._count = 0
        self._hi = self._lo = self._index = array("Q")
        self._mask = self._shift = 0
        self._resize(min(capacity, _SMALLEST))

    def add(self, key: int, now: float | None = None) -> bool:
        """Remember ``key``; False when it was remembered already."""
        if self.seconds is not None:
            now = time.monotonic() if now is None else now
            self._expire(now)
        hi, lo = key >> 64 & _MASK64, key & _MASK64
        slot, found = self._find(hi, lo)
        if found:
            return False
        size = len(self._hi)
        if self._count == size:
            if size < self.capacity:
                self._resize(min(self.capacity, size + size // 4))
            else:
                self._forget_oldest()
                if self._buckets:
                    self._buckets[0][1] -= 1
                    if self._buckets[0][1] <= 0:
                        self._buckets.popleft()
            slot, _ = self._find(hi, lo)
            size = len(self._hi)
        position = (self._head + self._count) % size
        self._hi[position], self._lo[position] = hi, lo
        self._index[slot] = position + 1
        self._count += 1
        if self.seconds is not None:
            assert now is not None
            if self._buckets and now - self._buckets[-1][0] < 1.0:
                self._buckets[-1][1] += 1
            else:
                self._buckets.append([now, 1])
        return True

    def holds(self, key: int, now: float | None = None) -> bool:
        """Whether ``key`` is remembered now (keys past their age are forgotten first)."""
        if self.seconds is not None:
            self._expire(time.monotonic() if now is None else now)
        return self._find(key >> 64 & _MASK64, key & _MASK64)[1]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int) and self.holds(key)

    def __len__(self) -> int:
        return self._count

    # -- internals ---------------------------------------------------------------------------

    def _find(self, hi: int, lo: int) -> tuple[int, bool]:
        """The index slot holding (hi, lo), or the empty slot where it would go."""
        index, his, los, mask = self._index, self._hi, self._lo, self._mask
        slot = (lo * _GOLDEN & _MASK64) >> self._shift
        while True:
            stored = index[slot]
            if not stored:
                return slot, False
            if los[stored - 1] == lo and his[stored - 1] == hi:
                return slot, True
            slot = (slot + 1) & mask

    def _expire(self, now: float) -> None:
        assert self.seconds is not None
        while self._buckets and now - self._buckets[0][0] > self.seconds:
            for _ in range(int(self._buckets[0][1])):
                self._forget_oldest()
            self._buckets.popleft()
        size = len(self._hi)
        while size > _SMALLEST and self._count < size // 4:
            size //= 2
        if size != len(self._hi):
            self._resize(size)

    def _forget_oldest(self) -> None:
        position = self._head
        slot, _ = self._find(self._hi[position], self._lo[position])
        self._delete_slot(slot)
        self._head = (position + 1) % len(self._hi)
        self._count -= 1

    def _delete_slot(self, hole: int) -> None:
        """Empty ``hole`` and shift later entries of its probe run back (linear probing without tombstones)."""
        index, los, mask, shift = self._index, self._lo, self._mask, self._shift
        probe = hole
        while True:
            probe = (probe + 1) & mask
            stored = index[probe]
            if not stored:
                break
            home = (los[stored - 1] * _GOLDEN & _MASK64) >> shift
            # the entry at `probe` may fill the hole unless its home lies cyclically in (hole, probe]
            if (hole < probe and hole < home <= probe) or (hole > probe and (home > hole or home <= probe)):
                continue
            index[hole] = stored
            hole = probe
        index[hole] = 0

    def _resize(self, size: int) -> None:
        """Move the keys, oldest first, into a ring of ``size`` slots and rebuild the index.

        Copies array slices: no Python object per key, even for a moment (a resize in the
        middle of a burst would otherwise add allocator pages that stay in use).
        """
        self._hi = self._unrolled(self._hi, size)
        self._lo = self._unrolled(self._lo, size)
        self._head = 0
        bits = max(1, math.ceil(math.log2(size / _MAX_LOAD)))
        self._index = array("I", bytes(4 << bits))
        self._mask, self._shift = (1 << bits) - 1, 64 - bits
        for position in range(self._count):
            slot, _ = self._find(self._hi[position], self._lo[position])
            self._index[slot] = position + 1

    def _unrolled(self, ring: array[int], size: int) -> array[int]:
        """The held keys of ``ring`` from the oldest on, padded with zeros to ``size`` slots."""
        end = self._head + self._count
        keys = ring[self._head:end] if end <= len(ring) else ring[self._head:] + ring[:end - len(ring)]
        keys.extend(array("Q", bytes(8 * (size - self._count))))
        return keys
