"""End to end on loopback: a trollmoves server and client deliver files into a directory nginx
serves; a WIS2 node announces each on Mosquitto; the WIS2 subscriber downloads them over HTTPS,
verifies them and announces them on posttroll. A file corrupted on the HTTP side is caught, a
duplicate notification skipped."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("paho.mqtt")
pytest.importorskip("requests")
from support.bus import BusRecorder, free_port
from support.client import InProcessClient, client_section, prime, results, write_all
from support.files import payload, write_file
from support.ini import write_ini
from support.wis2_subscriber import SubscriberHarness, integrity
from trollmoves_http import testing as nginx_testing
from trollmoves_http.testing import Nginx
from trollmoves_mqtt import testing as broker_testing
from trollmoves_mqtt.testing import Mosquitto

if not (broker_testing.available() and nginx_testing.available()):
    pytest.skip("mosquitto and nginx are needed (scripts/install-system-deps installs them as root)",
                allow_module_level=True)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def chain(servers, tmp_path: Path, served: Path) -> Iterator[tuple[object, BusRecorder]]:
    """A server and our client delivering its files into ``served`` (under nginx's root)."""
    server = servers("srv")
    port = free_port()
    config = write_ini(tmp_path / "client.ini", {"test": client_section(server.provider, f"{served}/", port)})
    client = InProcessClient(config)
    recorder = BusRecorder([f"tcp://127.0.0.1:{port}"], ["/test/data"])
    try:
        prime(lambda name: write_file(server.inbox, f"{name}.dat", b"probe"), recorder)
        yield server, recorder
    finally:
        client.stop()
        recorder.close()


def test_server_client_http_wis2_subscriber_posttroll(chain, tmp_path: Path, broker: Mosquitto, nginx: Nginx,
                                                      served: Path, caplog: pytest.LogCaptureFixture) -> None:
    server, delivered = chain
    contents = {f"f{i}.dat": payload(i) * 100 for i in range(3)}
    write_all(contents, server.inbox)
    files = delivered.wait_for(lambda m: m in results(delivered), count=3, timeout=30)
    assert sorted(m.data["uid"] for m in files) == sorted(contents)

    harness = SubscriberHarness(tmp_path / "wis2", broker,
                                connection_parameters={"ca_file": str(nginx.ca_file), "retry_delay": 0})
    try:
        harness.start(tmp_path / "state")
        # the WIS2 node: one notification per delivered file, its data on nginx
        notifications = {}
        for message in files:
            name = message.data["uid"]
            data = Path(message.data["uri"]).read_bytes()
            notifications[name] = harness.wnm(name, href=nginx.url(f"/{served.name}/{name}", tls=True),
                                              length=len(data), integrity=integrity(data),
                                              datetime=message.data.get("start_time"))
        (served / "f1.dat").write_bytes(b"\0" + contents["f1.dat"][1:])  # corrupted on the HTTP side
        with caplog.at_level(logging.WARNING):
            for name in sorted(notifications):
                harness.publish(notifications[name])
            harness.publish(notifications["f0.dat"])  # a duplicate
            subscriber = harness.wait_handled(4)
        assert dict(subscriber.outcomes) == {"delivered": 2, "failed": 1, "repeat": 1,
                                             "deletion": subscriber.outcomes["deletion"]}
        announced = {m.data["uid"]: m for m in harness.files(2)}
        assert sorted(announced) == ["f0.dat", "f2.dat"]
        for name in announced:
            assert (harness.destination / name).read_bytes() == contents[name]
            assert announced[name].data["wis2_id"] == notifications[name]["id"]
            assert announced[name].data["size"] == len(contents[name])
        assert not (harness.destination / "f1.dat").exists()
        assert any(notifications["f1.dat"]["id"] in r.getMessage() and r.levelno == logging.ERROR
                   for r in caplog.records)
        assert len(nginx.requests(f"/{served.name}/f0.dat")) == 1  # the duplicate was not fetched
    finally:
        harness.close()
