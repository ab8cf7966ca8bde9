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


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_discards_values_and_expiry_match_a_model(seed: int) -> None:
    # one add per second: every key starts its own run, so it expires exactly `seconds` after
    rng = random.Random(seed)
    universe = [rng.getrandbits(128) for _ in range(4000)]
    universe += [(rng.getrandbits(64) << 64) | 777 for _ in range(40)]  # shared index home slots
    seconds = 1500.0
    keys = RecentKeys(seconds, 100_000, values=True)
    model: OrderedDict[int, tuple[int, float]] = OrderedDict()
    now = 0.0
    for step in range(30_000):
        now += 1.0
        for key in [k for k, (_, added) in model.items() if now - added > seconds]:
            del model[key]
        key = rng.choice(universe)
        action = rng.random()
        # discard in waves, so that the ring shrinks and packs while keys are still held
        if action < (0.7 if step // 3000 % 2 else 0.2):
            assert keys.discard(key, now=now) == (key in model)
            model.pop(key, None)
        elif action < 0.85:
            value = rng.getrandbits(64)
            assert keys.add(key, now=now, value=value) == (key not in model)
            model.setdefault(key, (value, now))
        else:
            expected = model.get(key)
            assert keys.get(key, now=now) == (None if expected is None else expected[0])
        assert len(keys) == len(model)
    assert all(keys.get(k, now=now) == v for k, (v, _) in model.items())
    assert sum(keys.holds(k, now=now) for k in universe) == len(model)


def test_discarded_keys_give_the_memory_back() -> None:
    keys = RecentKeys(seconds=600.0, capacity=65536)
    held = [n * 7919 << 64 | n for n in range(20_000)]
    for key in held:
        keys.add(key, now=0.0)
    full = len(keys._hi)
    for key in held[:-10]:
        assert keys.discard(key, now=1.0)
    assert not keys.discard(held[0], now=1.0)
    assert len(keys) == 10 and len(keys._hi) < full // 8
    assert all(keys.holds(key, now=1.0) for key in held[-10:])


def test_a_full_ring_reuses_the_slots_of_discarded_keys_before_forgetting_held_ones() -> None:
    keys = RecentKeys(None, 1024)
    for n in range(1024):
        keys.add(n + 1)
    for n in range(0, 1024, 2):  # half the ring discarded
        keys.discard(n + 1)
    for n in range(2000, 2500):
        assert keys.add(n)
    assert len(keys) == 512 + 500 and all(keys.holds(n + 1) for n in range(1, 1024, 2))
