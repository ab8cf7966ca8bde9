"""The broker connection state in the roles' logs and metrics, across a broker stopped and started."""

from __future__ import annotations

import logging
import re

from support.bus import wait_until
from trollmoves_mqtt.transport import MqttTransport
from trollmoves_roles.observe.metrics import RoleMetrics
from trollmoves_roles.testing import in_loop, running_loop


def _sample(metrics: RoleMetrics, name: str, bus: str) -> float | None:
    found = re.search(rf'^{name}{{bus="{re.escape(bus)}"}} (\S+)$', metrics.render(), re.MULTILINE)
    return float(found.group(1)) if found else None


def test_a_lost_broker_is_one_line_and_a_zero_until_it_is_back(fresh_broker, caplog):
    caplog.set_level(logging.INFO)
    transport = MqttTransport.for_bus(fresh_broker.url(prefix="status", client_id="status"))
    bus = str(transport.bus)
    metrics = RoleMetrics("client")  # what every role serves on --metrics-port
    publisher = transport.publisher("provider", name="status")
    subscriber = transport.subscriber(["provider"], ["/status"])
    try:
        with running_loop("client") as loop:
            # a role holds several connections to one broker: one line and one gauge for them all
            requester = in_loop(loop, lambda: transport.requester(loop))
            assert wait_until(lambda: _sample(metrics, "trollmoves_bus_connected", bus) == 1.0, 10), metrics.render()
            assert _sample(metrics, "trollmoves_bus_reconnects_total", bus) == 0.0

            fresh_broker.stop()
            assert wait_until(lambda: _sample(metrics, "trollmoves_bus_connected", bus) == 0.0, 20), metrics.render()
            assert wait_until(lambda: "lost the broker" in caplog.text, 10)
            fresh_broker.start()
            assert wait_until(lambda: _sample(metrics, "trollmoves_bus_connected", bus) == 1.0, 60), metrics.render()
            assert wait_until(lambda: "connected to the broker" in caplog.text, 10)
            assert _sample(metrics, "trollmoves_bus_reconnects_total", bus) == 1.0
            in_loop(loop, requester.close)
    finally:
        publisher.stop()
        subscriber.close()
    lost = [r for r in caplog.records if "lost the broker" in r.getMessage()]
    back = [r for r in caplog.records if "connected to the broker" in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelno == logging.WARNING, [r.getMessage() for r in lost]
    assert len(back) == 1 and bus in back[0].getMessage(), [r.getMessage() for r in back]
    # connections closed on purpose are no longer reported as down
    assert _sample(metrics, "trollmoves_bus_connected", bus) is None
