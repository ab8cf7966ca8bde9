"""RecentKeys: a bounded, expiring set of 128-bit keys held in flat arrays."""

from __future__ import annotations

import random
import tracemalloc
from collections import OrderedDict

import pytest

from trollmoves_core.recent import RecentKeys, key_of


def test_keys_are_forgotten_after_their_age_and_beyond_capacity() -> None:
    seen = RecentKeys(seconds=10.0, capacity=3)
    assert seen.add(1, now=0.0) and not seen.add(1, now=5.0)
    assert seen.add(2, now=5.5)
    assert not seen.add(1, now=9.9)  # still within 10 s of its first report
    assert seen.add(1, now=11.0)  # forgotten after 10 s, so new again
    assert seen.holds(2, now=11.0) and len(seen) == 2
    for key in (3, 4):
        assert seen.add(key, now=12.0)
    assert len(seen) == 3 and not seen.holds(2, now=12.0)  # over capacity: the oldest went first
    assert seen.holds(1, now=12.0) and seen.holds(3, now=12.0) and seen.holds(4, now=12.0)
    assert seen.add(2, now=12.5)


@pytest.mark.parametrize("capacity", [1, 2, 7, 1000, 1025, 5000])
def test_without_expiry_it_behaves_like_a_fifo_set_of_that_capacity(capacity: int) -> None:
    rng = random.Random(capacity)
    # keys sharing their low 64 bits land in the same index slots: probe runs, shifts on deletion
    universe = [rng.getrandbits(128) for _ in range(3 * capacity + 50)]
    universe += [(rng.getrandbits(64) << 64) | 12345 for _ in range(40)]
    keys = RecentKeys(None, capacity)
    model: OrderedDict[int, None] = OrderedDict()
    for _ in range(20 * capacity + 2000):
        key = rng.choice(universe)
        assert keys.add(key) == (key not in model)
        if key not in model:
            model[key] = None
            if len(model) > capacity:
                model.popitem(last=False)
        assert len(keys) == len(model)
    assert all(key in keys for key in model)
    assert sum(key in keys for key in universe) == len(model)


def test_forgetting_gives_the_memory_back() -> None:
    keys = RecentKeys(seconds=60.0, capacity=65536)
    for n in range(50_000):
        keys.add(n * 7919 << 64 | n, now=n / 1000)
    full = len(keys._hi)
    keys.add(1, now=1000.0)  # everything else expired
    assert len(keys) == 1 and len(keys._hi) < full // 8


def test_held_keys_are_not_python_objects() -> None:
    keys = RecentKeys(seconds=None, capacity=20_000)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for n in range(20_000):
            keys.add(key_of(f"/data/file-{n:06d}.dat"))
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # 16 bytes per key in the ring and 8 in the index (half full) is about 640 KB here;
    # a dict of ints would hold about 2 MB
    assert grown < 1_000_000, f"{grown} bytes held for 20,000 keys"


def test_key_of_is_stable_and_128_bits() -> None:
    assert key_of("a.dat") == key_of("a.dat") != key_of("b.dat")
    assert 0 <= key_of("\udcff") < 2**128  # undecodable file names (surrogate escapes) are keys too


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        RecentKeys(None, 0)


def test_a_lookup_forgets_keys_past_their_age_without_an_add() -> None:
    # a server asked about a push long after its last one must not find it "recently done"
    keys = RecentKeys(seconds=10.0, capacity=100)
    keys.add(7, now=0.0)
    assert keys.holds(7, now=5.0)
    assert not keys.holds(7, now=11.5) and len(keys) == 0
