"""A process does not hear its own publishers back through the broker, unless a subscriber names
the publisher's address (as it must to hear it over ZeroMQ): a client would otherwise get its own
push, ack and result of every file on its subscription."""

from __future__ import annotations

from posttroll.message import Message
from support.bus import free_port
from trollmoves_mqtt.transport import MqttTransport
from trollmoves_roles.testing import settle


def _drain(subscriber, until: str) -> list[str]:
    """Types of what arrives until a message of type ``until`` (inclusive), then for 0.5 s more."""
    got: list[str] = []
    while (message := subscriber.recv(10)) is not None:
        got.append(message.type)
        if message.type == until:
            break
    while (message := subscriber.recv(0.5)) is not None:
        got.append(message.type)
    return got


def test_a_subscriber_hears_only_the_own_publishers_whose_address_it_names(broker):
    transport = MqttTransport.for_bus(broker.url(prefix=f"echo{free_port()}", client_id=f"echo{free_port()}"))
    mine = transport.publisher("tcp://*:40123", name="mine")
    theirs = transport.publisher("tcp://*:40999", name="theirs")
    of_mine = transport.subscriber(["127.0.0.1:40123"], ["/echo"])
    of_theirs = transport.subscriber(["tcp://127.0.0.1:40999"], ["/echo"])
    try:
        settle(mine, of_mine, "/echo")
        settle(theirs, of_theirs, "/echo")
        mine.send(Message("/echo/file", "mine", {}))
        theirs.send(Message("/echo/file", "theirs", {}))
        assert _drain(of_mine, "mine") == ["mine"]
        assert _drain(of_theirs, "theirs") == ["theirs"]
    finally:
        for subscriber in (of_mine, of_theirs):
            subscriber.close()
        for publisher in (mine, theirs):
            publisher.stop()


def test_without_addresses_a_subscriber_hears_everything(broker):
    transport = MqttTransport.for_bus(broker.url(prefix=f"echo{free_port()}", client_id=f"echo{free_port()}"))
    publisher = transport.publisher("tcp://*:40123", name="mine")
    subscriber = transport.subscriber([], ["/echo"])
    try:
        settle(publisher, subscriber, "/echo")
        publisher.send(Message("/echo/file", "mine", {}))
        assert _drain(subscriber, "mine") == ["mine"]
    finally:
        subscriber.close()
        publisher.stop()
