"""The ZeroMQ transport passes the transport conformance suite."""

from __future__ import annotations

import pytest
from trollmoves_roles.bus.zeromq import ZeroMQTransport
from trollmoves_roles.testing import BusUnderTest, TransportContract


class TestZeroMQTransport(TransportContract):
    @pytest.fixture
    def bus(self) -> BusUnderTest:
        return BusUnderTest(ZeroMQTransport())
