"""Requests over a real Mosquitto: where an inbox replies, ZeroMQ security refused, the requester's window."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import uuid
from collections import deque

import pytest
import trollmoves_mqtt.transport as mqtt_transport
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from posttroll.message import Message
from trollmoves_mqtt.connection import Connection
from trollmoves_mqtt.topics import request_topic
from trollmoves_mqtt.transport import MqttTransport
from trollmoves_roles.bus.requester import INITIAL_WINDOW
from trollmoves_roles.bus.security import CurveClient, Policy, parse_allowed_clients
from trollmoves_roles.bus.transport import IncomingRequest
from trollmoves_roles.observe.ratelimit import RateLimitedLog
from trollmoves_roles.testing import WAIT, in_loop, running_loop

from trollmoves_core.exceptions import ConfigError

_PORTS = itertools.count(41000)


@pytest.fixture
def transport(broker) -> MqttTransport:
    return MqttTransport.for_bus(broker.url(f"t{uuid.uuid4().hex[:8]}", client_id=f"req-{uuid.uuid4().hex[:8]}"))


def _publish_request(sender: Connection, prefix: str, address: str, response_topic: str, n: int) -> None:
    properties = Properties(PacketTypes.PUBLISH)
    properties.ResponseTopic = response_topic
    properties.CorrelationData = str(n).encode()
    sender.publish(request_topic(prefix, address), Message("/req", "ping", {"n": n}).encode().encode(), properties)


@pytest.mark.parametrize("forged", ["{prefix}/sat/file", "{prefix}/reply/a/b", "{prefix}/reply/", "elsewhere/x"])
def test_an_inbox_drops_requests_whose_response_topic_is_not_a_reply_topic(transport, forged, caplog, monkeypatch):
    # a limiter of its own: the module's allows 5 lines per 10 s, which the earlier cases may have used up
    # when a slow subscription made them send several rounds (the case last run then saw no line)
    monkeypatch.setattr(mqtt_transport, "_LIMITED", RateLimitedLog(mqtt_transport.LOG, period=10.0, burst=5))
    bus = transport.bus
    address = f"127.0.0.1:{next(_PORTS)}"
    inbox = transport.request_inbox(address)
    sender = Connection(bus, f"{bus.client_id}-forger", role="forger")
    caplog.set_level(logging.WARNING, logger="trollmoves_mqtt.transport")
    received: list[IncomingRequest] = []
    try:
        # QoS 1 from one client keeps its order: each forged request reaches the inbox before the honest one
        deadline, n = time.monotonic() + WAIT, 0
        while not received and time.monotonic() < deadline:
            n += 1
            _publish_request(sender, bus.prefix, address, forged.format(prefix=bus.prefix), -n)
            _publish_request(sender, bus.prefix, address, bus.topic("reply", "honest-1"), n)
            until = time.monotonic() + 0.3
            while not received and time.monotonic() < until:
                incoming = inbox.receive()
                if incoming is not None:
                    received.append(incoming)
                time.sleep(0.01)
    finally:
        sender.close()
        inbox.close()
    assert received, "no request reached the inbox"
    incoming = received[0]
    assert isinstance(incoming.request, Message) and incoming.request.data["n"] > 0
    assert incoming.token[0] == f"{bus.prefix}/reply/honest-1"
    drops = [r.getMessage() for r in caplog.records if "dropped a request" in r.getMessage()]
    assert drops and all("\n" not in line and "response topic" in line for line in drops)
    assert Message("/req", "ping", {}).sender in drops[0]  # names the peer


def _security_error(call) -> str:
    with pytest.raises(ConfigError) as caught:
        call()
    text = str(caught.value)
    assert "\n" not in text and "MQTT" in text and "ACL" in text
    return text


def test_zeromq_security_is_refused_not_ignored(transport, tmp_path):
    allowed = Policy("chain-a", networks=parse_allowed_clients("127.0.0.1"))
    text = _security_error(lambda: transport.request_inbox("127.0.0.1:9", security=allowed, section="chain-a"))
    assert "allowed_clients" in text and "[chain-a]" in text
    curve = CurveClient(b"p" * 40, b"s" * 40, b"k" * 40)
    text = _security_error(lambda: transport.subscriber([], ["/x"], security=curve))
    assert "client_secret_key_file" in text and "publisher_public_key_file" in text
    with running_loop("security") as loop:
        text = _security_error(lambda: in_loop(loop, lambda: transport.requester(loop, security=curve)))
    assert "server_public_key_file" in text


def test_no_security_policy_still_works(transport):
    inbox = transport.request_inbox("127.0.0.1:9", security=Policy("chain-a"), section="chain-a")
    inbox.close()
    transport.subscriber([], ["/x"], security=None).close()


class SerialServer:
    """An inbox answering one request every ``delay`` s, in arrival order (a server whose workers
    are busy): ``most_waiting`` is the most requests it held unanswered at once."""

    def __init__(self, transport: MqttTransport, delay: float) -> None:
        self.address = f"127.0.0.1:{next(_PORTS)}"
        self.delay = delay
        self.most_waiting = 0
        self._inbox = transport.request_inbox(self.address)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        waiting: deque[IncomingRequest] = deque()
        free_at = 0.0
        while not self._halt.is_set():
            while (incoming := self._inbox.receive()) is not None:
                waiting.append(incoming)
            self.most_waiting = max(self.most_waiting, len(waiting))
            if waiting and time.monotonic() >= free_at:
                incoming = waiting.popleft()
                request = incoming.request
                assert isinstance(request, Message)
                self._inbox.reply(incoming.token, Message(request.subject, "ack", request.data))
                free_at = time.monotonic() + self.delay
            time.sleep(0.002)

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(5)
        self._inbox.close()


def test_a_burst_to_a_busy_server_keeps_only_a_few_requests_outstanding(transport):
    server = SerialServer(transport, 0.02)
    replies: queue.Queue[str | None] = queue.Queue()
    try:
        with running_loop("window") as loop:
            requester = in_loop(loop, lambda: transport.requester(loop, max_in_flight=64))
            # one answered request first: the inbox's subscription is in place before the burst
            in_loop(loop, lambda: requester.request(server.address, Message("/t", "push", {"uid": "probe"}),
                                                    timeout=0.5, attempts=20, callback=lambda r, e: replies.put(e)))
            assert replies.get(timeout=WAIT) is None
            server.most_waiting = 0

            def burst() -> None:
                for i in range(100):
                    requester.request(server.address, Message("/t", "push", {"uid": str(i)}), timeout=30,
                                      attempts=1, callback=lambda r, e: replies.put(e))
            in_loop(loop, burst)
            errors = [replies.get(timeout=WAIT + 30) for _ in range(100)]
            in_loop(loop, requester.close)
    finally:
        server.stop()
    assert errors == [None] * 100
    # a fixed window of max_in_flight would have kept 64 waiting at the server
    assert server.most_waiting <= 3 * INITIAL_WINDOW, server.most_waiting
