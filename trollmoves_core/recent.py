"""Remember recent events by 128-bit key in flat arrays: no Python object per key.

Roles remember, per file, that they have seen it (watchers), pushed it (the server) or
received it (the client), for minutes or for tens of thousands of files. Held as Python ints
in a dict, each key costs about 100 bytes in small objects, and those objects, allocated
between the short-lived ones of the same burst, keep whole allocator pages from being given
back: the process grows burst after burst. :class:`RecentKeys` holds keys in two flat arrays
(a ring, oldest first) indexed by an open-addressing table of positions: about 24 bytes per
key at full capacity, in a few large blocks that shrink again when the keys are forgotten.
A key can carry a 64-bit value (``values=True``), and be forgotten before its time
(:meth:`RecentKeys.discard`: a watcher forgets a deleted file).
"""

from __future__ import annotations

import hashlib
import math
import time
from array import array

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
    """128-bit keys, each forgotten ``seconds`` after it was added (never, with ``None``), when
    more than ``capacity`` are held (oldest first), or when discarded. Not thread-safe.

    Adding a key held already changes nothing (its age and value are kept). With ``values``,
    each key carries a 64-bit unsigned value (:meth:`get`); without, :meth:`get` gives 0.
    """

    __slots__ = ("_count", "_head", "_hi", "_index", "_live", "_lo", "_mask", "_run_count", "_run_first", "_run_time",
                 "_runs", "_shift", "_val", "capacity", "seconds", "values")

    def __init__(self, seconds: float | None, capacity: int, *, values: bool = False) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.seconds = seconds
        self.capacity = capacity
        self.values = values
        # (time, count) per run of keys added within one second, no time stored per key: a ring
        # sized once for the most runs the window can hold, so that no object is made for a run
        # (one made in a burst and kept for minutes pins an allocator page of that burst)
        slots = 1 if seconds is None else min(int(seconds) + 3, capacity + 1)
        self._run_time = array("d", bytes(8 * slots))
        self._run_count = array("Q", bytes(8 * slots))
        self._run_first = self._runs = 0
        # the ring holds _count slots from _head, oldest first; _live of them are held keys, the
        # others were discarded (their index entry is gone) and are dropped by the next resize
        self._head = self._count = self._live = 0
        self._hi = self._lo = self._val = self._index = array("Q")
        self._mask = self._shift = 0
        self._resize(min(capacity, _SMALLEST))

    def add(self, key: int, now: float | None = None, value: int = 0) -> bool:
        """Remember ``key`` (with ``value``); False when it was remembered already."""
        if self.seconds is not None:
            now = time.monotonic() if now is None else now
            self._expire(now)
        hi, lo = key >> 64 & _MASK64, key & _MASK64
        slot, found = self._find(hi, lo)
        if found:
            return False
        size = len(self._hi)
        if self._count == size:
            if self._count - self._live > size // 4:
                self._resize(size)  # room enough once the discarded keys' slots are dropped
            elif size < self.capacity:
                self._resize(min(self.capacity, size + size // 4))
            else:
                self._forget_oldest()
                if self._runs:
                    self._run_count[self._run_first] -= 1
                    if not self._run_count[self._run_first]:
                        self._drop_oldest_run()
            slot, _ = self._find(hi, lo)
            size = len(self._hi)
        position = (self._head + self._count) % size
        self._hi[position], self._lo[position] = hi, lo
        if self.values:
            self._val[position] = value
        self._index[slot] = position + 1
        self._count += 1
        self._live += 1
        if self.seconds is not None:
            assert now is not None
            self._count_run(now)
        return True

    def holds(self, key: int, now: float | None = None) -> bool:
        """Whether ``key`` is remembered now (keys past their age are forgotten first)."""
        return self.get(key, now) is not None

    def get(self, key: int, now: float | None = None) -> int | None:
        """The value of ``key`` if it is remembered now, else None."""
        if self.seconds is not None:
            self._expire(time.monotonic() if now is None else now)
        slot, found = self._find(key >> 64 & _MASK64, key & _MASK64)
        if not found:
            return None
        return self._val[self._index[slot] - 1] if self.values else 0

    def discard(self, key: int, now: float | None = None) -> bool:
        """Forget ``key`` now; whether it was remembered (keys past their age are forgotten first)."""
        if self.seconds is not None:
            self._expire(time.monotonic() if now is None else now)
        slot, found = self._find(key >> 64 & _MASK64, key & _MASK64)
        if not found:
            return False
        self._delete_slot(slot)
        self._live -= 1
        self._shrink()
        return True

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int) and self.holds(key)

    def __len__(self) -> int:
        return self._live

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
        while self._runs and now - self._run_time[self._run_first] > self.seconds:
            for _ in range(self._run_count[self._run_first]):
                self._forget_oldest()
            self._drop_oldest_run()
        self._shrink()

    def _shrink(self) -> None:
        """Halve the ring while it is less than a quarter full of held keys."""
        size = len(self._hi)
        while size > _SMALLEST and self._live < size // 4:
            size //= 2
        if size != len(self._hi):
            self._resize(size)

    def _count_run(self, now: float) -> None:
        """Count one key added at ``now`` in the newest run, or in a new run a second on."""
        slots = len(self._run_time)
        newest = (self._run_first + self._runs - 1) % slots
        if self._runs and (now - self._run_time[newest] < 1.0 or self._runs == slots):
            # (a full ring cannot happen within the window's bound; counting the key in the
            # newest run then only keeps it a little longer)
            self._run_count[newest] += 1
            return
        newest = (self._run_first + self._runs) % slots
        self._run_time[newest], self._run_count[newest] = now, 1
        self._runs += 1

    def _drop_oldest_run(self) -> None:
        self._run_first = (self._run_first + 1) % len(self._run_time)
        self._runs -= 1

    def _forget_oldest(self) -> None:
        position = self._head
        if self._live < self._count:
            slot, found = self._find(self._hi[position], self._lo[position])
            if found and self._index[slot] == position + 1:  # not discarded (nor added again since)
                self._delete_slot(slot)
                self._live -= 1
        else:
            self._delete_slot(self._find(self._hi[position], self._lo[position])[0])
            self._live -= 1
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
        """Move the held keys, oldest first, into a ring of ``size`` slots and rebuild the index.

        Copies array slices: no Python object per key, even for a moment (a resize in the
        middle of a burst would otherwise add allocator pages that stay in use).
        """
        if self._live < self._count:
            self._drop_discarded()
        self._hi = self._unrolled(self._hi, size)
        self._lo = self._unrolled(self._lo, size)
        if self.values:
            self._val = self._unrolled(self._val, size)
        self._head = 0
        bits = max(1, math.ceil(math.log2(size / _MAX_LOAD)))
        self._index = array("I", bytes(4 << bits))
        self._mask, self._shift = (1 << bits) - 1, 64 - bits
        for position in range(self._count):
            slot, _ = self._find(self._hi[position], self._lo[position])
            self._index[slot] = position + 1

    def _drop_discarded(self) -> None:
        """Keep only the held keys in the ring, oldest first, and recount the runs.

        Leaves the index stale: only :meth:`_resize` calls it, and rebuilds the index next.
        """
        size = len(self._hi)
        his, los, vals = array("Q"), array("Q"), array("Q")

        def keep(count: int) -> int:
            kept = 0
            for _ in range(count):
                position = self._head
                slot, found = self._find(self._hi[position], self._lo[position])
                if found and self._index[slot] == position + 1:
                    his.append(self._hi[position])
                    los.append(self._lo[position])
                    if self.values:
                        vals.append(self._val[position])
                    kept += 1
                self._head = (position + 1) % size
            return kept

        if self.seconds is None:
            keep(self._count)
        else:
            slots, first, runs = len(self._run_time), self._run_first, self._runs
            times, counts = array("d", self._run_time), array("Q", self._run_count)
            self._run_first = self._runs = 0
            for n in range(runs):
                run = (first + n) % slots
                kept = keep(counts[run])
                if kept:
                    self._run_time[self._runs], self._run_count[self._runs] = times[run], kept
                    self._runs += 1
        self._hi, self._lo, self._val = his, los, vals
        self._head, self._count = 0, len(his)

    def _unrolled(self, ring: array[int], size: int) -> array[int]:
        """The held keys of ``ring`` from the oldest on, padded with zeros to ``size`` slots."""
        end = self._head + self._count
        keys = ring[self._head:end] if end <= len(ring) else ring[self._head:] + ring[:end - len(ring)]
        keys.extend(array("Q", bytes(8 * (size - self._count))))
        return keys
