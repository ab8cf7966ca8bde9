"""The client's event loop: timers run in order, cancelled ones neither run nor keep their arguments."""

from __future__ import annotations

import gc
import threading
import weakref

from trollmoves_roles.bus.loop import COMPACT_MIN, EventLoop


class Payload:
    """Something a timer's arguments keep alive (a request, its message, its transfer)."""


def run_briefly(loop: EventLoop, seconds: float) -> None:
    stopper = threading.Timer(seconds, loop.stop)
    stopper.start()
    try:
        loop.run()
    finally:
        stopper.cancel()


def test_timers_run_in_due_order_and_cancelled_ones_do_not_run():
    loop = EventLoop("test")
    ran: list[str] = []
    loop.call_later(0.05, ran.append, "second")
    loop.call_later(0.01, ran.append, "first")
    loop.call_later(0.02, ran.append, "cancelled").cancel()
    run_briefly(loop, 0.3)
    assert ran == ["first", "second"]


def test_a_cancelled_timer_releases_its_arguments_at_once():
    loop = EventLoop("test")
    payload = Payload()
    alive = weakref.ref(payload)
    timer = loop.call_later(3600, lambda p: None, payload)
    del payload
    gc.collect()
    assert alive() is not None, "a pending timer keeps its arguments"
    timer.cancel()
    gc.collect()
    assert alive() is None, "a cancelled timer still holds its arguments"


def test_cancelled_timers_are_swept_out_of_the_queue_before_their_due_time():
    loop = EventLoop("test")
    keep = loop.call_later(3600, lambda: None)
    timers = [loop.call_later(3600, lambda: None) for _ in range(4 * COMPACT_MIN)]
    for timer in timers:
        timer.cancel()
    queued = len(loop._timers)
    assert queued <= 2 * COMPACT_MIN + 2, f"{queued} timers still queued after cancelling {len(timers)}"
    assert any(entry[2] is keep for entry in loop._timers)
    ran: list[int] = []
    loop.call_later(0.01, ran.append, 1)
    run_briefly(loop, 0.2)
    assert ran == [1]
