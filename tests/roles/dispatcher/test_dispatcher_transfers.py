"""The bounded pool and the mover cache shared by the dispatcher and the downloader."""

from __future__ import annotations

import threading

from trollmoves_roles.transfers.movers import MoverCache
from trollmoves_roles.transfers.pool import BoundedPool

from trollmoves_core.plugins import default_host


def test_submit_waits_for_room_and_shutdown_drops_queued_jobs(caplog):
    pool = BoundedPool(workers=1, backlog=1)
    release, started = threading.Event(), threading.Event()
    ran: list[int] = []

    def blocking() -> None:
        started.set()
        release.wait(10)
        ran.append(0)

    assert pool.submit(blocking)
    assert started.wait(10)
    assert pool.submit(lambda: ran.append(1))  # the one backlog slot
    halt = threading.Event()
    halt.set()
    assert not pool.submit(lambda: ran.append(2), halt), "a full pool must make submit wait (or give up on halt)"

    stopper = threading.Thread(target=pool.shutdown)
    stopper.start()
    release.set()
    stopper.join(10)
    assert not stopper.is_alive(), "shutdown deadlocked"
    assert ran == [0]
    assert "1 queued transfer(s) dropped" in caplog.text


def test_a_failing_job_does_not_kill_the_worker(caplog):
    pool = BoundedPool(workers=1)
    done = threading.Event()
    pool.submit(lambda: 1 / 0)
    pool.submit(done.set)
    assert done.wait(10)
    pool.shutdown()
    assert "Transfer job failed unexpectedly" in caplog.text


def test_mover_cache_reuses_one_mover_per_class_and_parameters(tmp_path):
    cache = MoverCache(default_host())
    first = cache.get(str(tmp_path / "a"), {"mode": "copy"})
    assert cache.get(f"file://{tmp_path}/b", {"mode": "copy"}) is first
    assert cache.get(str(tmp_path / "a"), {"mode": "hardlink"}) is not first
    cache.close_all()
    assert cache.get(str(tmp_path / "a"), {"mode": "copy"}) is not first
