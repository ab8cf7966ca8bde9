"""The WIS2 subscriber against a real Mosquitto and a real nginx (HTTPS): download, verify, announce,
skip repeats, inline content, the bounding box, bad notifications."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import itertools
import logging
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytest.importorskip("paho.mqtt")
pytest.importorskip("requests")
from support.bus import BusRecorder, free_port, wait_until
from support.processes import TROLLMOVES, TrollmovesProcess
from support.wis2_subscriber import SubscriberHarness, integrity, serve_file
from trollmoves_http import testing as nginx_testing
from trollmoves_http.testing import Nginx
from trollmoves_mqtt import testing as broker_testing
from trollmoves_mqtt.connection import Connection, unique_id
from trollmoves_mqtt.options import parse_bus_address
from trollmoves_mqtt.testing import Mosquitto
from trollmoves_wis2 import notification
from trollmoves_wis2.subscriber.config import load_config
from trollmoves_wis2.subscriber.engine import Wis2Subscriber

from trollmoves_core.exceptions import ConfigError
from trollmoves_core.plugins import default_host

if not (broker_testing.available() and nginx_testing.available()):
    pytest.skip("mosquitto and nginx are needed (scripts/install-system-deps installs them as root)",
                allow_module_level=True)

PUBTIME = dt.datetime(2026, 12, 2, 6, 4, 50, tzinfo=dt.UTC)
SENSING = dt.datetime(2026, 12, 2, 5, 40, tzinfo=dt.UTC)


@pytest.fixture
def harness(tmp_path: Path, broker: Mosquitto, nginx: Nginx,
            request: pytest.FixtureRequest) -> Iterator[SubscriberHarness]:
    settings = getattr(request, "param", {})
    parameters = {"retries": 2, "retry_delay": 0, "ca_file": str(nginx.ca_file)}
    subscriber = SubscriberHarness(tmp_path, broker, connection_parameters=parameters, **settings)
    yield subscriber
    subscriber.close()


def test_downloads_verifies_and_announces_a_file(harness: SubscriberHarness, nginx: Nginx, served: Path) -> None:
    data = os.urandom(100_000)
    name = "SVM05_j01_d20261202_t0540_e0541.h5"
    href = serve_file(nginx, served, name, data)
    harness.start()
    doc = harness.wnm(name, href=href, length=len(data), integrity=integrity(data), datetime=SENSING,
                      pubtime=PUBTIME, media_type="application/x-hdf5", metadata_id="urn:wmo:md:se-smhi:viirs-sdr",
                      geometry={"type": "Point", "coordinates": [18.0, 59.3]},
                      properties={"producer": "se-smhi"})
    harness.publish(doc)
    assert harness.wait_handled(1).outcomes["delivered"] == 1
    local = harness.dataset / name
    assert local.read_bytes() == data
    [message] = harness.files(1)
    assert message.type == "file"
    assert message.data["uri"] == str(local) and message.data["uid"] == name
    assert message.data["size"] == len(data)
    assert message.data["integrity"] == dict(zip(("method", "value"), integrity(data), strict=True))
    assert message.data["start_time"] == SENSING.replace(tzinfo=None)
    assert message.data["pubtime"] == PUBTIME.replace(tzinfo=None)
    assert message.data["wis2_id"] == doc["id"] and message.data["wis2_topic"] == harness.topic
    assert message.data["data_id"] == doc["properties"]["data_id"]
    assert message.data["metadata_id"] == "urn:wmo:md:se-smhi:viirs-sdr"
    assert (message.data["platform_name"], message.data["sensor"]) == ("noaa-20", "viirs")
    assert message.data["centre_id"] == harness.centre and message.data["data_policy"] == "core"
    assert message.data["geometry"] == {"type": "Point", "coordinates": [18.0, 59.3]}
    assert message.data["wis2_href"] == href and message.data["wis2_media_type"] == "application/x-hdf5"
    assert message.data["producer"] == "se-smhi"


@pytest.mark.parametrize("harness", [{"layout": "{centre_id}/{platform_name}/{start_time:%Y/%m/%d}/{name}"}],
                         indirect=True)
def test_the_same_name_in_two_datasets_lands_where_the_layout_says(harness: SubscriberHarness, nginx: Nginx,
                                                                    served: Path) -> None:
    harness.start()
    other_topic = harness.topic.replace("noaa-20/viirs", "metop-b/avhrr")
    for topic, content in [(harness.topic, b"viirs"), (other_topic, b"avhrr")]:
        (served / topic.split("/")[-2]).mkdir()
        href = serve_file(nginx, served, f"{topic.split('/')[-2]}/granule.h5", content)
        doc = notification.build(f"{topic.removeprefix('origin/a/')}/granule.h5", href, integrity=integrity(content),
                                 length=len(content), datetime=SENSING)
        harness.publish(doc, topic)
    assert harness.wait_handled(2).outcomes["delivered"] == 2
    assert harness.written() == [f"{harness.centre}/metop-b/2026/12/02/granule.h5",
                                 f"{harness.centre}/noaa-20/2026/12/02/granule.h5"]
    for message in harness.files(2):  # each announced where it landed
        local = harness.destination / harness.centre / message.data["platform_name"] / "2026/12/02/granule.h5"
        assert message.data["uri"] == str(local) and message.data["uid"] == "granule.h5"
        assert local.read_bytes() == message.data["sensor"].encode()


def test_a_corrupted_file_is_retried_reported_and_not_delivered(harness: SubscriberHarness, nginx: Nginx,
                                                                 served: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    data = os.urandom(50_000)
    corrupted = bytearray(data)
    corrupted[1000] ^= 0xFF
    href = serve_file(nginx, served, "corrupt.h5", bytes(corrupted))
    harness.start()
    doc = harness.wnm("corrupt.h5", href=href, length=len(data), integrity=integrity(data, "sha256"))
    with caplog.at_level(logging.WARNING):
        harness.publish(doc)
        assert harness.wait_handled(1).outcomes["failed"] == 1
    assert harness.written() == []  # not even a partial file
    assert harness.files() == []
    assert len(nginx.requests(f"/{served.name}/corrupt.h5")) == 2  # retries: 2
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert doc["id"] in error.getMessage() and "does not match" in error.getMessage()
    # the failure is not remembered: the repeat of a fixed file is delivered
    (served / "corrupt.h5").write_bytes(data)
    repeat = harness.wnm("corrupt.h5", href=href, length=len(data), integrity=integrity(data, "sha256"))
    harness.publish(repeat)
    assert harness.wait_handled(2).outcomes["delivered"] == 1
    assert (harness.dataset / "corrupt.h5").read_bytes() == data
    assert [m.data["wis2_id"] for m in harness.files(1)] == [repeat["id"]]  # the corrupted one was never announced


def test_a_file_without_length_is_checked_before_it_is_put_in_place(harness: SubscriberHarness, nginx: Nginx,
                                                                     served: Path) -> None:
    data = os.urandom(10_000)
    href = serve_file(nginx, served, "nolength.h5", b"x" + data[1:])
    harness.start()
    harness.publish(harness.wnm("nolength.h5", href=href, integrity=integrity(data)))
    assert harness.wait_handled(1).outcomes["failed"] == 1
    assert harness.written() == []
    assert len(nginx.requests(f"/{served.name}/nolength.h5")) == 2


def test_a_file_without_length_on_a_failing_server_is_tried_retries_times(harness: SubscriberHarness,
                                                                          nginx: Nginx) -> None:
    href = nginx.url("/unavailable/nolength.h5", tls=True)  # always 503, a transient failure
    harness.start()
    harness.publish(harness.wnm("nolength.h5", href=href, integrity=integrity(b"data")))
    assert harness.wait_handled(1).outcomes["failed"] == 1
    assert len(nginx.requests("/unavailable/nolength.h5")) == 2  # retries: 2, not 2 x 2


def test_a_token_in_the_link_is_neither_logged_nor_announced(harness: SubscriberHarness, nginx: Nginx, served: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    data = b"for those who hold the signature"
    href = serve_file(nginx, served, "signed.h5", data) + "?se=2026-12-05&sig=SIGSECRET&sort_key=name&code=CODESECRET"
    missing = nginx.url(f"/{served.name}/gone.h5?X-Amz-Signature=AMZSECRET", tls=True)
    harness.start()
    with caplog.at_level(logging.DEBUG, "trollmoves_wis2"), caplog.at_level(logging.DEBUG, "trollmoves_core"), \
            caplog.at_level(logging.DEBUG, "trollmoves_http"):
        harness.publish(harness.wnm("signed.h5", href=href, integrity=integrity(data), length=len(data)))
        harness.publish(harness.wnm("gone.h5", href=missing, integrity=integrity(data), length=len(data)))
        subscriber = harness.wait_handled(2)
    assert (subscriber.outcomes["delivered"], subscriber.outcomes["failed"]) == (1, 1)
    [message] = harness.files(1)
    assert message.data["wis2_href"] == href.replace("SIGSECRET", "***").replace("CODESECRET", "***")
    assert "gone.h5?X-Amz-Signature=***" in caplog.text and "signed.h5?se=2026-12-05&sig=***" in caplog.text
    assert "SECRET" not in caplog.text


def test_repeats_are_skipped_updates_are_not(harness: SubscriberHarness, nginx: Nginx, served: Path) -> None:
    data = b"first version\n"
    href = serve_file(nginx, served, "a.txt", data)
    harness.start()
    first = harness.wnm("a.txt", href=href, integrity=integrity(data), length=len(data), pubtime=PUBTIME)
    harness.publish(first)
    harness.wait_handled(1)
    harness.publish(first)  # the same message again (a second broker)
    other_id = {**first, "id": str(uuid.uuid4())}  # the same data, another message
    harness.publish(other_id)
    assert harness.wait_handled(3).outcomes["repeat"] == 2
    assert len(nginx.requests(f"/{served.name}/a.txt")) == 1
    newer = b"second version\n"
    (served / "a.txt").write_bytes(newer)
    update = harness.wnm("a.txt", href=href, integrity=integrity(newer), length=len(newer), rel="update",
                         pubtime=PUBTIME + dt.timedelta(minutes=1))
    harness.publish(update)
    assert harness.wait_handled(4).outcomes["delivered"] == 2
    assert (harness.dataset / "a.txt").read_bytes() == newer
    assert [m.data["wis2_id"] for m in harness.files(2)] == [first["id"], update["id"]]


def test_repeats_are_skipped_after_a_restart_and_what_came_meanwhile_is_delivered(
        harness: SubscriberHarness, nginx: Nginx, served: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    data = b"one\n"
    href = serve_file(nginx, served, "one.txt", data)
    doc = harness.wnm("one.txt", href=href, integrity=integrity(data), length=len(data))
    harness.start(state)
    harness.publish(doc)
    assert harness.wait_handled(1).outcomes["delivered"] == 1
    harness.stop()
    # published while it is stopped: the broker keeps them in the persistent session
    two = b"two\n"
    harness.publish(harness.wnm("two.txt", href=serve_file(nginx, served, "two.txt", two), integrity=integrity(two),
                                length=len(two)))
    harness.publish(doc)
    harness.start(state)
    subscriber = harness.wait_handled(2)
    assert (subscriber.outcomes["delivered"], subscriber.outcomes["repeat"]) == (1, 1)
    assert (harness.dataset / "two.txt").read_bytes() == two
    assert len(nginx.requests(f"/{served.name}/one.txt")) == 1


@pytest.mark.parametrize(("encoding", "encode"), [
    ("utf-8", lambda data: data.decode()),
    ("base64", lambda data: base64.b64encode(data).decode()),
    ("gzip", lambda data: base64.b64encode(gzip.compress(data)).decode()),
])
def test_inline_content_is_written_without_a_download(harness: SubscriberHarness, nginx: Nginx,
                                                      encoding: str, encode: object) -> None:
    data = b"TTAA 02061 02185 99598 70300 81000=\n" * 10
    harness.start()
    before = len(nginx.requests())
    doc = harness.wnm("bulletin.txt", href=nginx.url("/nowhere/bulletin.txt", tls=True), integrity=integrity(data),
                      properties={"content": {"encoding": encoding, "value": encode(data), "size": len(data)}})
    harness.publish(doc)
    assert harness.wait_handled(1).outcomes["delivered"] == 1
    assert (harness.dataset / "bulletin.txt").read_bytes() == data
    assert len(nginx.requests()) == before
    [message] = harness.files(1)
    assert message.data["size"] == len(data) and "content" not in message.data


def test_a_file_name_with_a_nul_byte_is_one_line_not_a_traceback(harness: SubscriberHarness, nginx: Nginx,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    harness.start()
    doc = harness.wnm("nul.txt", href=nginx.url("/a%00b.txt", tls=True), integrity=integrity(b"hello"),
                      properties={"content": {"encoding": "utf-8", "value": "hello", "size": 5}})
    with caplog.at_level(logging.ERROR):
        harness.publish(doc)
        assert harness.wait_handled(1).outcomes["failed"] == 1
    [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.exc_info is None and doc["id"] in error.getMessage() and "file name" in error.getMessage()
    assert harness.written() == []


def test_inline_content_that_does_not_match_is_not_written(harness: SubscriberHarness, nginx: Nginx) -> None:
    harness.start()
    doc = harness.wnm("bad.txt", href=nginx.url("/bad.txt", tls=True), integrity=integrity(b"something else"),
                      properties={"content": {"encoding": "utf-8", "value": "hello", "size": 5}})
    harness.publish(doc)
    assert harness.wait_handled(1).outcomes["failed"] == 1
    assert harness.written() == []


@pytest.mark.parametrize("harness", [{"bbox": [5, 54, 32, 72], "keep_unlocated": False}], indirect=True)
def test_the_bounding_box_filters_by_geometry(harness: SubscriberHarness, nginx: Nginx, served: Path) -> None:
    data = b"x"
    harness.start()
    square = [[10, 55], [20, 55], [20, 65], [10, 65], [10, 55]]
    for name, geometry in [("in.txt", {"type": "Point", "coordinates": [18.0, 59.3]}),
                           ("out.txt", {"type": "Point", "coordinates": [2.35, 48.85]}),
                           ("area.txt", {"type": "Polygon", "coordinates": [square]}),
                           ("nowhere.txt", None)]:
        harness.publish(harness.wnm(name, href=serve_file(nginx, served, name, data), geometry=geometry,
                                    integrity=integrity(data), length=1))
    subscriber = harness.wait_handled(4)
    assert (subscriber.outcomes["delivered"], subscriber.outcomes["outside"]) == (2, 2)
    assert [Path(p).name for p in harness.written()] == ["area.txt", "in.txt"]


def test_a_bad_notification_is_one_line_and_the_next_is_delivered(harness: SubscriberHarness, nginx: Nginx,
                                                                   served: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    harness.start()
    bad = harness.wnm("bad.h5")
    del bad["properties"]["pubtime"]
    with caplog.at_level(logging.WARNING):
        harness.publish(bad)
        harness.publish(b"\xff not json")
        data = b"good"
        harness.publish(harness.wnm("good.txt", href=serve_file(nginx, served, "good.txt", data),
                                    integrity=integrity(data), length=len(data)))
        subscriber = harness.wait_handled(3)
    assert (subscriber.outcomes["bad"], subscriber.outcomes["delivered"]) == (2, 1)
    lines = [r.getMessage() for r in caplog.records if "Dropped the WIS2 notification" in r.getMessage()]
    assert len(lines) == 2
    assert bad["id"] in lines[0] and harness.topic in lines[0] and "pubtime" in lines[0]
    assert "?" in lines[1] and "not JSON" in lines[1]


def test_messages_on_topics_no_longer_configured_are_ignored(harness: SubscriberHarness) -> None:
    subscriber = harness.start()
    # the broker's persistent session may hold the filters of an earlier configuration
    assert subscriber.process("origin/a/wis2/xx-other/data/core/weather/x/y", b"{}") == "other topic"


@pytest.fixture(scope="module")
def wis2_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A broker as WIS2 runs them: TLS, user ``everyone`` with password ``everyone``."""
    with Mosquitto(tmp_path_factory.mktemp("mosquitto-wis2"), users={"everyone": "everyone"}, tls=True) as mosquitto:
        (mosquitto.directory / "everyone.pw").write_text("everyone\n")
        (mosquitto.directory / "wrong.pw").write_text("nobody\n")
        yield mosquitto


def wis2_url(broker: Mosquitto, password: str = "everyone", **query: str) -> str:
    return broker.url("", scheme="mqtts", user="everyone", password_file=str(broker.directory / f"{password}.pw"),
                      **query)


def test_tls_and_a_password_as_wis2_brokers_ask(tmp_path: Path, wis2_broker: Mosquitto) -> None:
    harness = SubscriberHarness(tmp_path, wis2_broker, url=wis2_url(wis2_broker, ca_file=str(wis2_broker.ca_file)),
                                sender_url=wis2_broker.url("", user="everyone",
                                                           password_file=str(wis2_broker.directory / "everyone.pw")))
    try:
        harness.start()
        harness.publish(harness.wnm("small.txt", properties={
            "content": {"encoding": "utf-8", "value": "hello", "size": 5}}))
        assert harness.wait_handled(1).outcomes["delivered"] == 1
        assert (harness.dataset / "small.txt").read_text() == "hello"
    finally:
        harness.close()


@pytest.mark.parametrize(("password", "query", "fault"), [
    ("wrong", {"ca_file": "CA"}, "refused the connection: Not authorized"),
    ("everyone", {}, "certificate"),  # the system CAs do not know the test CA
])
def test_a_refused_login_or_an_untrusted_broker_is_a_config_error(tmp_path: Path, wis2_broker: Mosquitto,
                                                                  password: str, query: dict[str, str],
                                                                  fault: str) -> None:
    query = {k: str(wis2_broker.ca_file) if v == "CA" else v for k, v in query.items()}
    config = tmp_path / "wis2.yaml"
    config.write_text(yaml.safe_dump({
        "broker": wis2_url(wis2_broker, password, **query), "subscribe": ["origin/a/wis2/+/data/#"],
        "download_destination": str(tmp_path / "in"), "publish_topic": "/wis2/in"}))
    subscriber = Wis2Subscriber(load_config(config), host=default_host())
    with pytest.raises(ConfigError, match=fault) as caught:
        subscriber.serve(threading.Event())
    assert "everyone.pw" not in str(caught.value) and "\n" not in str(caught.value)


def test_a_notification_not_handled_at_a_stop_is_not_acknowledged_and_comes_back(tmp_path: Path,
                                                                                broker: Mosquitto) -> None:
    with Nginx(tmp_path / "nginx", extra="location /slow/ { limit_rate 64k; }") as slow:
        (slow.root / "slow").mkdir()
        data = {name: os.urandom(96 * 1024) for name in ("first.dat", "second.dat")}
        harness = SubscriberHarness(tmp_path / "wis2", broker, parallel_downloads=1,
                                    connection_parameters={"ca_file": str(slow.ca_file)})
        try:
            subscriber = harness.start(tmp_path / "state")
            for name, content in data.items():
                harness.publish(harness.wnm(name, href=serve_file(slow, slow.root / "slow", name, content),
                                            integrity=integrity(content), length=len(content)))
            # the first is downloading (1.5 s at 64 KiB/s), the second waits for the one worker
            assert wait_until(lambda: subscriber.pool.pending == 2, timeout=10)
            harness.stop()  # the running download finishes; the waiting one is dropped unacknowledged
            assert dict(subscriber.outcomes) == {"delivered": 1, "deletion": subscriber.outcomes["deletion"]}
            assert (harness.dataset / "first.dat").exists()
            assert not (harness.dataset / "second.dat").exists()
            restarted = harness.start(tmp_path / "state")  # the broker delivers it again to the session
            assert wait_until(lambda: restarted.outcomes["delivered"] == 1, timeout=20)
            assert (harness.dataset / "second.dat").read_bytes() == data["second.dat"]
            assert len(slow.requests("/slow/first.dat")) == 1
        finally:
            harness.close()


def test_the_role_delivers_announces_and_keeps_a_history(tmp_path: Path, broker: Mosquitto) -> None:
    port, state, inbox = free_port(), tmp_path / "state", tmp_path / "in"
    topic = f"origin/a/wis2/se-t{uuid.uuid4().hex[:10]}/data/core/weather/space-based-observations/noaa-20/viirs"
    config = tmp_path / "wis2-in.yaml"
    config.write_text(yaml.safe_dump({
        "broker": broker.url("", client_id=f"test-{uuid.uuid4().hex[:8]}"), "subscribe": [topic],
        "download_destination": str(inbox), "publish_topic": "/wis2/in", "publish_port": port}))
    recorder = BusRecorder([f"tcp://127.0.0.1:{port}"], ["/wis2/in"])
    role = TrollmovesProcess(["wis2-subscriber", "--state-directory", state, "--publish-bind", "127.0.0.1", config],
                             tmp_path / "role.log")
    sender = Connection(parse_bus_address(broker.url("")), unique_id("test", "wnm"), role="test node")
    names = (f"bulletin{n}.txt" for n in itertools.count())
    try:
        role.wait_logged("WIS2 subscriber on")

        def delivered() -> bool:  # the first may come before the subscription is in place
            name = next(names)
            doc = notification.build(f"{topic.removeprefix('origin/a/')}/{name}", f"https://127.0.0.1:9/{name}",
                                     properties={"content": {"encoding": "utf-8", "value": "TTAA", "size": 4}})
            sender.publish(topic, notification.encode(doc))
            return bool(recorder.wait_for(lambda m: m.data["uid"] == name, timeout=1))

        assert wait_until(delivered, timeout=20, interval=0), role.log()
        [message] = recorder.wait_for(lambda m: m.type == "file")[:1]
        assert message.data["uri"] == str(inbox / topic.removeprefix("origin/a/") / message.data["uid"])
        assert Path(message.data["uri"]).read_text() == "TTAA"
    finally:
        sender.close()
        recorder.close()
        assert role.stop() == 0
    trace = subprocess.run([TROLLMOVES, "trace", message.data["uid"], "--state-directory", str(state)],
                           capture_output=True, text=True, check=False)
    assert trace.returncode == 0 and "downloaded" in trace.stdout, trace.stdout + trace.stderr


def test_members_of_a_group_share_the_notifications(tmp_path: Path, broker: Mosquitto) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    harness = SubscriberHarness(tmp_path / "a", broker, url=broker.url("", client_id=f"a-{group}", group=group))
    other_config = tmp_path / "b.yaml"
    other_config.write_text(harness.config_file.read_text().replace(f"a-{group}", f"b-{group}"))
    other = Wis2Subscriber(load_config(other_config), host=default_host(), publisher=harness.output)
    halt = threading.Event()
    thread = threading.Thread(target=other.serve, args=(halt,), daemon=True)
    try:
        thread.start()
        first = harness.start()
        assert wait_until(lambda: (harness.publish(harness.wnm("warm-up.h5", rel="deletion")),
                                   other.outcomes["deletion"])[1], timeout=15, interval=0.2)  # both subscribed
        names = [f"obs{n}.txt" for n in range(10)]
        for name in names:
            harness.publish(harness.wnm(name, properties={
                "content": {"encoding": "utf-8", "value": name, "size": len(name)}}))
        assert wait_until(lambda: first.outcomes["delivered"] + other.outcomes["delivered"] == 10, timeout=20)
        assert first.outcomes["delivered"] > 0 and other.outcomes["delivered"] > 0
        assert sorted(m.data["uid"] for m in harness.files(10)) == sorted(names)  # each once
    finally:
        halt.set()
        thread.join(15)
        harness.close()


@pytest.mark.parametrize("method", ["sha256", "sha384", "sha512", "sha3-256", "sha3-384", "sha3-512"])
def test_every_integrity_method_of_wnm_is_verified(harness: SubscriberHarness, nginx: Nginx, served: Path,
                                                    method: str) -> None:
    data = os.urandom(3000)
    good, bad = serve_file(nginx, served, "good.dat", data), serve_file(nginx, served, "bad.dat", data[::-1])
    harness.start()
    harness.publish(harness.wnm("good.dat", href=good, integrity=integrity(data, method)))
    harness.publish(harness.wnm("bad.dat", href=bad, integrity=integrity(data, method)))
    subscriber = harness.wait_handled(2)
    assert (subscriber.outcomes["delivered"], subscriber.outcomes["failed"]) == (1, 1)
    assert [Path(p).name for p in harness.written()] == ["good.dat"]
    assert harness.files(1)[0].data["integrity"] == {"method": method, "value": integrity(data, method)[1]}
