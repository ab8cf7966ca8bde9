"""A conformance suite for bus transports, for ours and third-party ones alike.

Subclass :class:`TransportContract` in a test module and provide a ``bus`` fixture returning a
:class:`BusUnderTest`, which says which addresses the transport's publishers, subscribers, request
inboxes and requesters take::

    class TestZeroMQ(TransportContract):
        @pytest.fixture
        def bus(self):
            return BusUnderTest(ZeroMQTransport())

The suite runs publishers, subscribers and request inboxes of one transport against each other
in this process, with real event loops; nothing of the transport is replaced.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from posttroll.message import Message

from trollmoves_roles.bus.loop import EventLoop
from trollmoves_roles.bus.transport import MessageTransport, Publisher, Subscriber

WAIT = 10.0
"""Seconds a test waits for what must arrive (generous: the machine may be loaded)."""


@dataclass
class BusUnderTest:
    """A transport and the addresses it takes; the defaults are ZeroMQ's (``tcp://`` on loopback)."""

    transport: MessageTransport

    def publish_address(self) -> str:
        return "tcp://127.0.0.1:0"

    def subscribe_address(self, publisher: Publisher) -> str:
        return f"tcp://127.0.0.1:{publisher.port}"

    def inbox_address(self) -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return f"tcp://127.0.0.1:{sock.getsockname()[1]}"

    def request_address(self, inbox_address: str) -> str:
        return inbox_address.removeprefix("tcp://")


@contextmanager
def running_loop(name: str) -> Iterator[EventLoop]:
    """An :class:`EventLoop` served by a thread of its own while the block runs."""
    loop = EventLoop(name)
    thread = threading.Thread(target=loop.run, name=name, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.stop()
        thread.join(WAIT)


def in_loop(loop: EventLoop, function: Callable[[], Any]) -> Any:
    """Run ``function`` in ``loop``'s thread and return what it returns."""
    result: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue()

    def call() -> None:
        try:
            result.put((function(), None))
        except BaseException as err:  # handed back to the caller
            result.put((None, err))

    loop.call_soon_threadsafe(call)
    value, error = result.get(timeout=WAIT)
    if error is not None:
        raise error
    return value


class TransportContract:
    """What every :class:`~trollmoves_roles.bus.transport.MessageTransport` must do."""

    @pytest.fixture
    def bus(self) -> BusUnderTest:
        raise NotImplementedError("provide a 'bus' fixture returning a BusUnderTest")

    @pytest.fixture
    def base(self) -> str:
        """A topic of this test's own."""
        return f"/contract/{uuid.uuid4().hex[:8]}"

    @pytest.fixture
    def publisher(self, bus: BusUnderTest) -> Iterator[Publisher]:
        publisher = bus.transport.publisher(bus.publish_address(), name="contract")
        yield publisher
        publisher.stop()

    @contextmanager
    def subscribed(self, bus: BusUnderTest, publisher: Publisher, topics: list[str]) -> Iterator[Subscriber]:
        subscriber = bus.transport.subscriber([bus.subscribe_address(publisher)], topics)
        try:
            settle(publisher, subscriber, topics[0])
            yield subscriber
        finally:
            subscriber.close()

    @contextmanager
    def serving(self, bus: BusUnderTest, answer: Callable[[Message], Message | None]) -> Iterator[tuple[str, list]]:
        """A request inbox answering each request with ``answer(request)`` (None: no reply);
        yields the address to request and the list of what it received."""
        address = bus.inbox_address()
        inbox = bus.transport.request_inbox(address)
        received: list[Any] = []
        with running_loop("contract-inbox") as loop:
            def on_readable() -> None:
                while (incoming := inbox.receive()) is not None:
                    received.append(incoming)
                    if isinstance(incoming.request, Message):
                        reply = answer(incoming.request)
                        if reply is not None:
                            inbox.reply(incoming.token, reply)
            in_loop(loop, lambda: loop.register(inbox.pollable, on_readable))
            try:
                yield bus.request_address(address), received
            finally:
                in_loop(loop, lambda: loop.unregister(inbox.pollable))
                inbox.close()

    # -- publish / subscribe -------------------------------------------------------------

    def test_message_arrives_unchanged(self, bus: BusUnderTest, publisher: Publisher, base: str) -> None:
        with self.subscribed(bus, publisher, [base]) as subscriber:
            sent = Message(f"{base}/file", "file", {"uid": "a.nc", "uri": "/data/a.nc", "n": 3, "nested": {"x": [1]}})
            publisher.send(sent)
            got = receive(subscriber, lambda m: m.type == "file")
        assert (got.subject, got.type, got.data, got.sender) == (sent.subject, sent.type, sent.data, sent.sender)
        assert got.time == sent.time

    def test_topics_are_posttroll_prefixes(self, bus: BusUnderTest, publisher: Publisher, base: str) -> None:
        with self.subscribed(bus, publisher, [f"{base}/a"]) as subscriber:
            for subject in (f"{base}/a", f"{base}/b", f"{base}/a/b", f"{base}x/a", f"{base}/ab", "/elsewhere"):
                publisher.send(Message(subject, "file", {"subject": subject}))
            publisher.send(Message(f"{base}/a/end", "end"))
            got = receive_until(subscriber, "end")
        assert [m.subject for m in got if m.type == "file"] == [f"{base}/a", f"{base}/a/b", f"{base}/ab"]

    def test_set_topics_changes_the_filter(self, bus: BusUnderTest, publisher: Publisher, base: str) -> None:
        with self.subscribed(bus, publisher, [f"{base}/a"]) as subscriber:
            subscriber.set_topics([f"{base}/b"])
            settle(publisher, subscriber, f"{base}/b")
            publisher.send(Message(f"{base}/a", "file", {}))
            publisher.send(Message(f"{base}/b", "file", {}))
            publisher.send(Message(f"{base}/b/end", "end"))
            got = receive_until(subscriber, "end")
        assert [m.subject for m in got if m.type == "file"] == [f"{base}/b"]

    def test_recv_times_out_without_a_message(self, bus: BusUnderTest, publisher: Publisher, base: str) -> None:
        with self.subscribed(bus, publisher, [base]) as subscriber:
            assert subscriber.recv(0) is None
            assert subscriber.recv(0.2) is None

    def test_a_burst_arrives_complete_and_in_order(self, bus: BusUnderTest, publisher: Publisher,
                                                   base: str) -> None:
        with self.subscribed(bus, publisher, [base]) as subscriber:
            for n in range(500):
                publisher.send(Message(f"{base}/burst", "file", {"n": n}))
            publisher.send(Message(f"{base}/end", "end"))
            got = receive_until(subscriber, "end")
        assert [m.data["n"] for m in got if m.type == "file"] == list(range(500))

    def test_pollable_wakes_an_event_loop(self, bus: BusUnderTest, publisher: Publisher, base: str) -> None:
        with self.subscribed(bus, publisher, [base]) as subscriber, running_loop("contract-sub") as loop:
            got: queue.Queue[Message] = queue.Queue()

            def on_readable() -> None:
                while (message := subscriber.recv(0)) is not None:
                    got.put(message)
            in_loop(loop, lambda: loop.register(subscriber.pollable, on_readable))
            for n in range(3):
                publisher.send(Message(f"{base}/loop", "file", {"n": n}))
            numbers = []
            while len(numbers) < 3:
                message = got.get(timeout=WAIT)
                if message.type == "file":
                    numbers.append(message.data["n"])
            in_loop(loop, lambda: loop.unregister(subscriber.pollable))
        assert numbers == [0, 1, 2]

    def test_heartbeat(self, bus: BusUnderTest, publisher: Publisher) -> None:
        with self.subscribed(bus, publisher, [f"/heartbeat/{publisher.name}"]) as subscriber:
            publisher.heartbeat(0)
            beat = receive(subscriber, lambda m: m.type == "beat")
        assert beat.subject == f"/heartbeat/{publisher.name}"
        assert beat.data["min_interval"] == 0

    # -- requests ------------------------------------------------------------------------

    def test_request_and_reply(self, bus: BusUnderTest) -> None:
        with self.serving(bus, lambda r: Message(r.subject, "ack", {"echo": r.data["n"]})) as (address, seen), \
                running_loop("contract-req") as loop:
            requester = in_loop(loop, lambda: bus.transport.requester(loop))
            replies: queue.Queue[tuple[Message | None, str | None]] = queue.Queue()
            in_loop(loop, lambda: requester.request(address, Message("/req", "push", {"n": 7}), timeout=5.0,
                                                    attempts=3, callback=lambda r, e: replies.put((r, e))))
            reply, error = replies.get(timeout=WAIT)
            assert error is None and reply is not None
            assert (reply.type, reply.data) == ("ack", {"echo": 7})
            assert in_loop(loop, requester.pending) == 0
            assert not in_loop(loop, lambda: requester.is_down(address))
            in_loop(loop, requester.close)
        assert len(seen) == 1 and isinstance(seen[0].peer, str) and seen[0].peer

    def test_many_requests_each_get_their_own_reply(self, bus: BusUnderTest) -> None:
        with self.serving(bus, lambda r: Message(r.subject, "ack", {"echo": r.data["n"]})) as (address, _), \
                running_loop("contract-req") as loop:
            requester = in_loop(loop, lambda: bus.transport.requester(loop, max_in_flight=4))
            replies: queue.Queue[tuple[int, Message | None]] = queue.Queue()

            def send_all() -> None:
                for n in range(40):
                    requester.request(address, lambda n=n: Message("/req", "push", {"n": n}), timeout=5.0,
                                      attempts=3, callback=lambda r, e, n=n: replies.put((n, r)))
            in_loop(loop, send_all)
            got = dict(replies.get(timeout=WAIT) for _ in range(40))
            in_loop(loop, requester.close)
        assert all(reply is not None and reply.data["echo"] == n for n, reply in got.items())
        assert sorted(got) == list(range(40))

    def test_no_server_times_out_after_every_attempt(self, bus: BusUnderTest) -> None:
        address = bus.request_address(bus.inbox_address())
        with running_loop("contract-req") as loop:
            requester = in_loop(loop, lambda: bus.transport.requester(loop))
            replies: queue.Queue[tuple[Message | None, str | None]] = queue.Queue()
            in_loop(loop, lambda: requester.request(address, Message("/req", "push", {}), timeout=0.3, attempts=2,
                                                    callback=lambda r, e: replies.put((r, e))))
            reply, error = replies.get(timeout=WAIT)
            assert in_loop(loop, lambda: requester.is_down(address))
            assert in_loop(loop, requester.pending) == 0
            in_loop(loop, requester.close)
        assert reply is None and error and "no reply" in error

    def test_an_unanswered_request_is_sent_attempts_times(self, bus: BusUnderTest) -> None:
        with self.serving(bus, lambda r: None) as (address, seen), running_loop("contract-req") as loop:
            requester = in_loop(loop, lambda: bus.transport.requester(loop))
            replies: queue.Queue[tuple[Message | None, str | None]] = queue.Queue()
            in_loop(loop, lambda: requester.request(address, Message("/req", "push", {"n": 1}), timeout=0.5,
                                                    attempts=3, callback=lambda r, e: replies.put((r, e))))
            reply, error = replies.get(timeout=WAIT)
            in_loop(loop, requester.close)
        assert reply is None and error
        assert len(seen) == 3 and all(s.request.data == {"n": 1} for s in seen)

    def test_closing_drops_outstanding_requests_without_callback(self, bus: BusUnderTest) -> None:
        with self.serving(bus, lambda r: None) as (address, _), running_loop("contract-req") as loop:
            requester = in_loop(loop, lambda: bus.transport.requester(loop))
            called: list[object] = []
            in_loop(loop, lambda: requester.request(address, Message("/req", "push", {}), timeout=0.3, attempts=1,
                                                    callback=lambda r, e: called.append(e)))
            assert in_loop(loop, requester.pending) == 1
            in_loop(loop, requester.close)
            time.sleep(0.6)
        assert called == []


def settle(publisher: Publisher, subscriber: Subscriber, topic: str) -> None:
    """Publish probes on ``topic`` until the subscriber gets one (its subscription is in place),
    then drop the probes still coming."""
    deadline = time.monotonic() + WAIT
    subject = topic.rstrip("/") + "/settle" if topic not in ("", "/") else "/settle"
    while time.monotonic() < deadline:
        publisher.send(Message(subject, "settle", {}))
        message = subscriber.recv(0.1)
        if message is not None and message.type == "settle":
            while subscriber.recv(0.2) is not None:
                pass
            return
    raise AssertionError(f"the subscription to {topic!r} never got a message")


def receive(subscriber: Subscriber, predicate: Callable[[Message], bool]) -> Message:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        message = subscriber.recv(0.1)
        if message is not None and predicate(message):
            return message
    raise AssertionError("the expected message never arrived")


def receive_until(subscriber: Subscriber, last_type: str) -> list[Message]:
    """Everything received up to and including the first message of type ``last_type``."""
    got = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        message = subscriber.recv(0.1)
        if message is None or message.type == "settle":
            continue
        got.append(message)
        if message.type == last_type:
            return got
    raise AssertionError(f"no {last_type!r} message after {[m.subject for m in got]}")
