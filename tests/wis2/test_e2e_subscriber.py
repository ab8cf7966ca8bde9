"""End to end on loopback, both halves of WIS2: a trollmoves server and client deliver files into a
directory nginx serves, the client announces each as a WIS2 notification on Mosquitto
(``wis2_*`` keys), and the WIS2 subscriber downloads them over HTTPS, verifies them and announces
them on posttroll. A file corrupted on the HTTP side is caught, a duplicate notification skipped."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

pytest.importorskip("paho.mqtt")
pytest.importorskip("requests")
from support.bus import free_port, wait_until
from support.client import InProcessClient, client_section
from support.files import payload, write_file
from support.ini import write_ini
from support.wis2_subscriber import SubscriberHarness
from trollmoves_http import testing as nginx_testing
from trollmoves_http.testing import Nginx
from trollmoves_mqtt import testing as broker_testing
from trollmoves_mqtt.testing import Mosquitto
from trollmoves_wis2 import notification
from trollmoves_wis2.testing import NotificationRecorder

if not (broker_testing.available() and nginx_testing.available()):
    pytest.skip("mosquitto and nginx are needed (scripts/install-system-deps installs them as root)",
                allow_module_level=True)

pytestmark = pytest.mark.timeout(180)


def test_server_client_wis2_node_nginx_broker_subscriber_posttroll(servers, tmp_path: Path, broker: Mosquitto,
                                                                   nginx: Nginx, served: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    harness = SubscriberHarness(tmp_path / "wis2", broker,
                                connection_parameters={"ca_file": str(nginx.ca_file), "retry_delay": 0})
    watch = NotificationRecorder(broker.url(""), harness.topic)

    def payload_of(name: str) -> bytes | None:
        found = watch.about(name)
        return found[0][2] if found else None

    server = servers("srv")
    section = client_section(server.provider, f"{served}/", free_port(), wis2_broker=broker.url(""),
                             wis2_topic=harness.topic, wis2_base_url=nginx.url(f"/{served.name}", tls=True))
    client = InProcessClient(write_ini(tmp_path / "client.ini", {"test": section}))
    contents = {f"f{i}.dat": payload(i) * 100 for i in range(3)}
    try:
        # the subscriber's session exists (it subscribed once) but it is stopped while the files flow
        harness.start(tmp_path / "state")
        harness.stop()

        def probe_announced() -> bool:  # the first files may go before the client has subscribed
            probe = f"probe{probe_announced.count}.dat"
            probe_announced.count += 1
            write_file(server.inbox, probe, b"probe")
            return wait_until(lambda: payload_of(probe), timeout=3)

        probe_announced.count = 0
        assert wait_until(probe_announced, timeout=40, interval=0.0), "the client never announced a file on WIS2"
        for name, content in contents.items():
            write_file(server.inbox, name, content)
        assert wait_until(lambda: all(payload_of(name) for name in contents), timeout=30)
        assert all((served / name).read_bytes() == content for name, content in contents.items())
        (served / "f1.dat").write_bytes(b"\0" + contents["f1.dat"][1:])  # corrupted on the HTTP side
        harness.publish(payload_of("f0.dat"))  # a duplicate (the same message from a second broker)

        with caplog.at_level(logging.WARNING):
            subscriber = harness.start(tmp_path / "state")  # the session brings what came meanwhile
            assert wait_until(lambda: {"f0.dat", "f2.dat"} <= {m.data["uid"] for m in harness.files()}
                              and subscriber.outcomes["failed"] == 1 and subscriber.outcomes["repeat"] == 1,
                              timeout=30), dict(subscriber.outcomes)
        announced = {m.data["uid"]: m for m in harness.files()}
        assert "f1.dat" not in announced and not (harness.dataset / "f1.dat").exists()
        for name in ("f0.dat", "f2.dat"):
            assert (harness.dataset / name).read_bytes() == contents[name]
            published = notification.parse(payload_of(name))
            assert announced[name].data["wis2_id"] == published.id
            assert announced[name].data["data_id"] == published.data_id
            assert announced[name].data["size"] == len(contents[name])
            assert announced[name].data["integrity"]["value"] == published.integrity_value
        failed = notification.parse(payload_of("f1.dat")).id
        assert any(failed in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
        assert len(nginx.requests(f"/{served.name}/f0.dat")) == 1  # the duplicate was not fetched
    finally:
        client.stop()
        watch.close()
        harness.close()
