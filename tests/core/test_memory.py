"""Returning memory to the system after a busy period."""

from __future__ import annotations

import time

import pytest

from trollmoves_core import memory


def test_release_free_memory_works_on_this_system() -> None:
    if memory._malloc_trim() is None:
        pytest.skip("no glibc malloc_trim here (musl or another libc): the trimmer stays off")
    assert memory.release_free_memory() is True


def test_the_trimmer_trims_once_after_a_busy_period_and_not_while_idle() -> None:
    if memory._malloc_trim() is None:
        pytest.skip("no glibc malloc_trim here (musl or another libc): the trimmer stays off")
    trimmer = memory.IdleTrimmer(interval=0.05).start()
    try:
        time.sleep(0.3)
        assert trimmer.trims == 0, "trimmed without any work done"
        end = time.process_time() + 0.3
        while time.process_time() < end:  # a busy period
            sum(range(1000))
        deadline = time.monotonic() + 10
        while trimmer.trims == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert trimmer.trims == 1
        time.sleep(0.3)
        assert trimmer.trims == 1, "trimmed again without new work"
    finally:
        trimmer.stop()
