"""A server → client chain delivering into a directory announces each file as a WNM on a real broker."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.bus import free_port, wait_until
from support.client import InProcessClient, OurServer, client_section
from support.files import write_file
from support.ini import write_ini
from trollmoves_mqtt.testing import Mosquitto
from trollmoves_wis2 import notification
from trollmoves_wis2.testing import NotificationRecorder

pytestmark = pytest.mark.timeout(120)

TROLLMOVES = str(Path(sys.executable).with_name("trollmoves"))
TOPIC = "origin/a/wis2/se-smhi/data/core/weather/space-based-observations/{platform_name!l}/viirs"
BASE_URL = "https://data.example.org/viirs"
_minutes = itertools.count()


def _file_name() -> tuple[str, dt.datetime]:
    start = dt.datetime(2026, 12, 2, 5, 0) + dt.timedelta(minutes=next(_minutes))
    return f"NOAA-20_{start:%Y%m%d%H%M}.dat", start


def _deliver(server: OurServer, subscriber: NotificationRecorder, content: bytes) -> tuple[str, dt.datetime, list]:
    """Write files into the server's inbox until one is announced on WIS2 (the first may precede
    the client's subscription); the last name, its time and its notifications."""
    found: list = []
    name, start = "", dt.datetime.min

    def announced() -> bool:
        nonlocal name, start, found
        name, start = _file_name()
        write_file(server.inbox, name, content)
        found = [] if not wait_until(lambda: subscriber.about(name), timeout=3) else subscriber.about(name)
        return bool(found)

    assert wait_until(announced, timeout=40, interval=0.0), "no WIS2 notification ever arrived"
    return name, start, found


def _client(tmp_path: Path, server: OurServer, broker_url: str, **extra: object) -> InProcessClient:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    section = client_section(server.provider, f"{out}/", free_port(), wis2_broker=broker_url, wis2_topic=TOPIC,
                             wis2_base_url=BASE_URL, **extra)
    return InProcessClient(write_ini(tmp_path / "client.ini", {"test": section}))


def test_delivered_file_is_announced_as_a_valid_wnm(tmp_path: Path, servers, broker: Mosquitto) -> None:
    server = servers("srv", origin=f"{tmp_path}/srv/in/{{platform_name}}_{{start_time:%Y%m%d%H%M}}.dat")
    content = os.urandom(70_000)
    subscriber = NotificationRecorder(broker.url(""))
    client = _client(tmp_path, server, broker.url(""), wis2_metadata_id="urn:wmo:md:se-smhi:viirs-sdr")
    try:
        name, start, found = _deliver(server, subscriber, content)
    finally:
        client.stop()
        subscriber.close()
    assert len(found) == 1
    topic, n, payload = found[0]
    assert topic == "origin/a/wis2/se-smhi/data/core/weather/space-based-observations/noaa-20/viirs"
    assert notification.validate(n.raw) == [] and len(payload) <= notification.MAX_BYTES
    link = notification.canonical_link(n)
    assert (link.rel, link.href, link.length) == ("canonical", f"{BASE_URL}/{name}", len(content))
    assert link.type == "application/octet-stream"
    assert (tmp_path / "out" / name).read_bytes() == content
    assert n.integrity_method == "sha256"
    assert n.integrity_value == base64.b64encode(hashlib.sha256(content).digest()).decode()
    assert n.data_id == f"wis2/se-smhi/data/core/weather/space-based-observations/noaa-20/viirs/{name}"
    assert n.datetime == start.replace(tzinfo=dt.UTC)
    assert n.geometry is None and n.metadata_id == "urn:wmo:md:se-smhi:viirs-sdr"
    assert dt.datetime.now(dt.UTC) - n.pubtime < dt.timedelta(minutes=5)


def test_file_with_a_known_data_id_is_announced_as_an_update(tmp_path: Path, servers, broker: Mosquitto) -> None:
    """The client fetches a uid once; a reprocessed file (new name, same data_id) is an update."""
    server = servers("srv", origin=f"{tmp_path}/srv/in/{{platform_name}}_{{start_time:%Y%m%d%H%M}}_{{version}}.dat")
    subscriber = NotificationRecorder(broker.url(""))
    client = _client(tmp_path, server, broker.url(""),
                     wis2_data_id="wis2/se-smhi/viirs/{platform_name}/{start_time:%Y%m%d%H%M}.dat")

    def first_announced() -> bool:
        start = dt.datetime(2026, 12, 2, 6, 0) + dt.timedelta(minutes=next(_minutes))
        first_announced.name = f"NOAA-20_{start:%Y%m%d%H%M}"
        write_file(server.inbox, f"{first_announced.name}_v1.dat", b"first version")
        return wait_until(lambda: subscriber.about(f"{first_announced.name}_v1.dat"), timeout=3)

    try:
        assert wait_until(first_announced, timeout=40, interval=0.0)
        stem = first_announced.name
        write_file(server.inbox, f"{stem}_v2.dat", b"second, longer version")
        assert wait_until(lambda: subscriber.about(f"{stem}_v2.dat"), timeout=30)
    finally:
        client.stop()
        subscriber.close()
    (_, new, _), (_, update, _) = subscriber.about(f"{stem}_v1.dat")[0], subscriber.about(f"{stem}_v2.dat")[0]
    assert (new.rel, update.rel) == ("canonical", "update")
    assert update.data_id == new.data_id == f"wis2/se-smhi/viirs/NOAA-20/{stem[8:]}.dat"
    assert update.pubtime >= new.pubtime and update.id != new.id
    assert notification.canonical_link(update).length == len(b"second, longer version")


def test_tls_and_password_file(tmp_path: Path, servers, secure_broker: Mosquitto) -> None:
    server = servers("srv", origin=f"{tmp_path}/srv/in/{{platform_name}}_{{start_time:%Y%m%d%H%M}}.dat")
    url = secure_broker.url("", scheme="mqtts", user="wis2", password_file=str(secure_broker.directory / "pw"),
                            ca_file=str(secure_broker.ca_file))
    subscriber = NotificationRecorder(url)
    client = _client(tmp_path, server, url)
    try:
        _, _, found = _deliver(server, subscriber, b"over tls")
    finally:
        client.stop()
        subscriber.close()
    assert notification.validate(found[0][1].raw) == []


def _run_client(tmp_path: Path, env: dict[str, str] | None = None, **keys: object) -> subprocess.CompletedProcess[str]:
    section = client_section("127.0.0.1:9", f"{tmp_path}/out/", free_port(), **keys)
    config = write_ini(tmp_path / "client.ini", {"test": section})
    return subprocess.run([TROLLMOVES, "client", str(config)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})},
                          check=False)


@pytest.mark.parametrize(("keys", "problem"), [
    ({"wis2_topic": "origin/b/wis2/se-smhi/data/core/weather/{platform_name}"}, "version 'b' must be 'a'"),
    ({"wis2_topic": "origin/a/wis2/se-smhi/data/open/weather/{platform_name}"}, "data-policy 'open'"),
    ({"wis2_topic": "origin/a/wis2/se-smhi/data/core/weather"}, "too short"),
    ({"wis2_topic": "origin/a/wis2/se-smhi/data/core/weather/{platform_name"}, "invalid trollsift template"),
    ({"wis2_topic": None}, "wis2_topic: required when any wis2_* key is set"),
    ({"wis2_base_url": "file:///data/out"}, "wis2_base_url: expected an http/https/ftp/sftp URL"),
    ({"wis2_broker": "tcp://127.0.0.1:1883"}, "expected mqtt:// or mqtts://"),
    ({"wis2_broker": "mqtt://127.0.0.1:1883/trollmoves"}, "has a topic prefix"),
])
def test_bad_wis2_config_exits_2_with_one_line(tmp_path: Path, broker: Mosquitto, keys: dict, problem: str) -> None:
    values = {"wis2_broker": broker.url(""), "wis2_topic": TOPIC, "wis2_base_url": BASE_URL, **keys}
    done = _run_client(tmp_path, **{k: v for k, v in values.items() if v is not None})
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and problem in lines[0] and "[test]" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_wis2_keys_without_the_plugin_exit_2_naming_it(tmp_path: Path) -> None:
    # announcing nothing while the config asks for WIS2 notifications would go unnoticed
    done = _run_client(tmp_path, env={"TROLLMOVES_DISABLE_PLUGINS": "wis2"}, wis2_broker="mqtt://127.0.0.1:9",
                       wis2_topic=TOPIC, wis2_base_url=BASE_URL)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "[test]" in lines[0] and "trollmoves-wis2 is installed but disabled" in lines[0], \
        done.stderr


def test_refused_login_exits_2(tmp_path: Path, secure_broker: Mosquitto) -> None:
    (tmp_path / "wrong").write_text("not the password\n")
    url = secure_broker.url("", scheme="mqtts", user="wis2", password_file=str(tmp_path / "wrong"),
                            ca_file=str(secure_broker.ca_file))
    done = _run_client(tmp_path, wis2_broker=url, wis2_topic=TOPIC, wis2_base_url=BASE_URL)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "refused the connection" in lines[-1] and "wis2_broker" in lines[-1], done.stderr
    assert "not the password" not in done.stderr


def test_check_reports_the_bad_topic(tmp_path: Path) -> None:
    section = client_section("127.0.0.1:9", f"{tmp_path}/out/", free_port(), wis2_broker="mqtt://127.0.0.1:1883",
                             wis2_topic="cache/a/wis2/SMHI/data/core/weather/x", wis2_base_url=BASE_URL)
    config = write_ini(tmp_path / "client.ini", {"test": section})
    done = subprocess.run([TROLLMOVES, "check", str(config)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode != 0
    assert "[test] wis2_topic: topic 'cache/a/wis2/SMHI/data/core/weather/x': centre-id 'SMHI'" in done.stdout \
        + done.stderr
    assert "unknown key" not in done.stdout + done.stderr and "not a client option" not in done.stdout
