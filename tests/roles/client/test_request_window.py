"""The requester's window: it grows over a long round trip, stays small for a queueing server."""

from __future__ import annotations

import heapq
import threading
import time

import zmq
from posttroll.message import Message
from trollmoves_roles.bus.loop import EventLoop
from trollmoves_roles.bus.requester import INITIAL_WINDOW, ZmqRequester

from tests.support.bus import free_port

REQUESTS = 200


class DelayedRouter:
    """A ROUTER that answers every request ``delay`` s after it arrived; ``serial`` answers one at
    a time (each waits for the one before: a server that queues), else all in parallel (a long link)."""

    def __init__(self, delay: float, *, serial: bool) -> None:
        self.delay, self.serial = delay, serial
        self.port = free_port()
        self.most_outstanding = 0
        self._halt = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _run(self) -> None:
        sock = zmq.Context.instance().socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(f"tcp://127.0.0.1:{self.port}")
        self._ready.set()
        due: list[tuple[float, int, list[bytes]]] = []
        free_at, seq = 0.0, 0
        while not self._halt.is_set():
            timeout = max(0.0, due[0][0] - time.monotonic()) if due else 0.05
            if sock.poll(int(timeout * 1000) + 1):
                frames = sock.recv_multipart()
                now = time.monotonic()
                free_at = max(now, free_at) + self.delay if self.serial else now + self.delay
                seq += 1
                heapq.heappush(due, (free_at, seq, frames))
                self.most_outstanding = max(self.most_outstanding, len(due))
            while due and due[0][0] <= time.monotonic():
                _, _, (peer, empty, payload) = heapq.heappop(due)
                request = Message.decode(payload.decode())
                sock.send_multipart([peer, empty, Message(request.subject, "ack", request.data).encode().encode()])
        sock.close(linger=0)

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(5)


def _send_burst(router: DelayedRouter, max_in_flight: int = 64, requests: int = REQUESTS) -> int:
    """Queue ``requests`` pushes at once; the number answered."""
    loop = EventLoop("test")
    requester = ZmqRequester(loop, max_in_flight=max_in_flight)
    answered = []

    def send() -> None:
        for i in range(requests):
            requester.request(f"127.0.0.1:{router.port}", Message("/t", "push", {"uid": str(i)}), timeout=30,
                              attempts=1, callback=lambda reply, error: answered.append(error is None))
    loop.call_soon_threadsafe(send)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while len(answered) < requests and time.monotonic() < deadline:
        time.sleep(0.02)
    loop.stop()
    thread.join(5)
    requester.close()
    router.stop()
    return sum(answered)


def test_the_window_grows_when_replies_wait_for_the_link_not_the_server():
    router = DelayedRouter(0.03, serial=False)
    assert _send_burst(router) == REQUESTS
    # A fixed window would have kept INITIAL_WINDOW outstanding; the adaptive one opened up.
    assert router.most_outstanding >= 8 * INITIAL_WINDOW, router.most_outstanding


def test_the_window_stays_at_its_floor_when_the_server_queues():
    router = DelayedRouter(0.02, serial=True)
    assert _send_burst(router, requests=100) == 100
    # Each extra request only waits longer at the server: round trips grow, the window does not
    # (beyond the jitter of a loaded machine; over the link it reaches the ceiling, 64).
    assert router.most_outstanding <= 3 * INITIAL_WINDOW, router.most_outstanding


def test_the_window_never_exceeds_max_requests_in_flight():
    router = DelayedRouter(0.03, serial=False)
    assert _send_burst(router, max_in_flight=6) == REQUESTS
    assert router.most_outstanding <= 6, router.most_outstanding
