"""Finding publishers through a posttroll nameserver (REQ lookups on loopback, never multicast)."""

from __future__ import annotations

import threading

import pytest
from posttroll import config as posttroll_config
from posttroll.ns import NameServer, get_pub_address
from support.bus import free_port, wait_until
from trollmoves_roles.bus.posttroll import BusPublisher

TOPIC = "/level2/avhrr"


@pytest.fixture
def nameserver():
    """An in-process nameserver with multicast off, on free ports; yields its REQ address."""
    ports = {"nameserver_port": free_port(), "broadcast_port": free_port(), "address_publish_port": free_port()}
    with posttroll_config.set(**ports):
        server = NameServer(multicast_enabled=False)
        thread = threading.Thread(target=server.run, kwargs={"nameserver_address": "127.0.0.1"}, daemon=True)
        thread.start()
        yield f"tcp://127.0.0.1:{ports['nameserver_port']}"
        server.stop()
        thread.join(10)


def test_publishers_are_found_through_the_nameserver(harness, make_file, tmp_path, nameserver):
    stalker = BusPublisher(0, bind="127.0.0.1", name="stalker", nameservers=["127.0.0.1"], advertise="127.0.0.1")
    assert wait_until(lambda: get_pub_address("stalker", timeout=1, nameserver=nameserver), timeout=15), \
        "the source never registered with the nameserver"
    harness.source.stop()
    harness.source = stalker  # feed the dispatcher through the registered publisher; the harness stops it
    config = {"t": {"directory": str(tmp_path / "out"), "publish_topic": "/done",
                    "dispatch_configs": [{"topics": [TOPIC]}]}}
    dispatcher = harness.start(config, warm_topic=TOPIC,
                               subscriber={"nameserver": nameserver, "subscribe_services": "stalker"})
    assert dispatcher.config.subscriber.addresses == ()  # reachable only through the nameserver
    harness.send(TOPIC, "file", {"uri": str(make_file("ns.nc")), "uid": "ns.nc"})
    harness.recorder.wait_for(lambda m: m.type == "file")
    assert (tmp_path / "out" / "ns.nc").exists()
