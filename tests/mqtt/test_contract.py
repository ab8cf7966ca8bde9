"""The MQTT transport passes the transport conformance suite, on a real Mosquitto."""

from __future__ import annotations

import itertools

import pytest
from trollmoves_mqtt.transport import MqttTransport
from trollmoves_roles.testing import BusUnderTest, TransportContract

_PORTS = itertools.count(40000)


class MqttBus(BusUnderTest):
    """Inbox addresses only name a request topic on the broker: any distinct ``host:port`` will do."""

    def publish_address(self) -> str:
        return "unused"

    def subscribe_address(self, publisher) -> str:
        return "unused"

    def inbox_address(self) -> str:
        return f"127.0.0.1:{next(_PORTS)}"

    def request_address(self, inbox_address: str) -> str:
        return inbox_address


class TestMqttTransport(TransportContract):
    @pytest.fixture
    def bus(self, broker, request) -> BusUnderTest:
        # a client id of the test's own: sessions of earlier tests must not feed this one
        return MqttBus(MqttTransport.for_bus(broker.url(client_id=f"contract-{request.node.name}")))


class TestMqttsTransport(TransportContract):
    @pytest.fixture
    def bus(self, secure_broker, request) -> BusUnderTest:
        url = secure_broker.url(scheme="mqtts", user="server", password_file=str(secure_broker.directory / "pw"),
                                ca_file=str(secure_broker.ca_file), client_id=f"contract-{request.node.name}")
        return MqttBus(MqttTransport.for_bus(url))
