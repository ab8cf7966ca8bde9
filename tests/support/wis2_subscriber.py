"""A WIS2 subscriber served in a thread between a real Mosquitto and a posttroll recorder, and the
nginx (HTTPS) fixtures of its tests (a test module imports the ones it uses).

The notifications are published by a plain MQTT connection of the test (as a WIS2 node or a
Global Broker would); each harness uses a topic of its own (a centre id made for it), so tests
sharing a broker never see each other's messages.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from posttroll.message import Message
from trollmoves_http.testing import Nginx
from trollmoves_mqtt.connection import Connection, unique_id
from trollmoves_mqtt.options import parse_bus_address
from trollmoves_mqtt.testing import Mosquitto
from trollmoves_roles.bus.posttroll import BusPublisher
from trollmoves_wis2 import notification
from trollmoves_wis2.subscriber.config import load_config
from trollmoves_wis2.subscriber.engine import Wis2Subscriber
from trollmoves_wis2.subscriber.seen import open_seen

from support.bus import BusRecorder, wait_until
from trollmoves_core.plugins import default_host

PUBLISH_TOPIC = "/wis2/in"


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    with Nginx(tmp_path_factory.mktemp("nginx")) as server:
        yield server


@pytest.fixture
def served(nginx: Nginx) -> Path:
    """A directory of the test's own under nginx's root."""
    directory = nginx.root / uuid.uuid4().hex
    directory.mkdir()
    return directory


def integrity(data: bytes, method: str = "sha512") -> tuple[str, str]:
    """A WNM's ``integrity`` of ``data``: (method, base64 digest)."""
    return method, base64.b64encode(hashlib.new(method, data).digest()).decode()


def serve_file(nginx: Nginx, served: Path, name: str, data: bytes) -> str:
    """Write ``data`` as ``served/name``; its HTTPS URL."""
    (served / name).write_bytes(data)
    return nginx.url(f"/{served.name}/{name}", tls=True)


class SubscriberHarness:
    """One :class:`Wis2Subscriber` at a time on ``broker``, announcing on :attr:`output` (recorded)."""

    def __init__(self, tmp_path: Path, broker: Mosquitto, *, url: str | None = None, sender_url: str | None = None,
                 **settings: Any) -> None:
        """``url``: the subscriber's broker address (default: ``broker``'s plain listener, anonymous);
        ``sender_url``: the address the test's notifications are published through."""
        self.tmp_path = tmp_path
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.broker = broker
        self.centre = f"se-t{uuid.uuid4().hex[:10]}"
        self.topic = f"origin/a/wis2/{self.centre}/data/core/weather/space-based-observations/noaa-20/viirs"
        self.destination = tmp_path / "wis2-in"
        self.dataset = self.destination / self.topic.removeprefix("origin/a/")  # where the default layout writes
        self.config_file = tmp_path / "wis2-subscriber.yaml"
        self.config_file.write_text(yaml.safe_dump({
            "broker": url or broker.url("", client_id=f"test-{self.centre}"),
            "subscribe": [f"origin/a/wis2/{self.centre}/data/core/weather/#"],
            "download_destination": str(self.destination), "publish_topic": PUBLISH_TOPIC,
            "connection_parameters": {"retries": 2, "retry_delay": 0}, **settings}))
        self.output = BusPublisher(0, bind="127.0.0.1", name="wis2-subscriber")
        self.recorder = BusRecorder([f"tcp://127.0.0.1:{self.output.port}"])
        self._sender = Connection(parse_bus_address(sender_url or broker.url("")), unique_id("test", "wnm"),
                                  role="test node")
        self.subscriber: Wis2Subscriber | None = None
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, state_directory: Path | None = None) -> Wis2Subscriber:
        """Serve the config; return once a notification published now reaches it."""
        seen, _ = open_seen(state_directory, self.config_file, "wis2-subscriber", 1000)
        subscriber = self.subscriber = Wis2Subscriber(load_config(self.config_file), host=default_host(),
                                                      publisher=self.output, seen=seen)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=subscriber.serve, args=(self._halt,), daemon=True)
        self._thread.start()
        # a deletion is a valid notification the subscriber does not act on: proof the subscription is live
        assert wait_until(lambda: (self.publish(self.wnm("warm-up.h5", rel="deletion")),
                                   subscriber.outcomes["deletion"])[1], timeout=15, interval=0.2), \
            "the subscriber never received a notification"
        assert wait_until(lambda: (self.output.send(Message("/warm/output", "beat")), self.recorder.messages)[1],
                          timeout=10, interval=0.05), "recorder never connected to the output publisher"
        return subscriber

    def wnm(self, name: str, *, href: str | None = None, rel: str = "canonical", **fields: Any) -> dict[str, Any]:
        """A notification of ``name`` (a data_id under this harness's topic) linking ``href``."""
        return notification.build(f"{self.topic.removeprefix('origin/a/')}/{name}",
                                  href or f"https://127.0.0.1:9/{name}", rel=rel, **fields)

    def publish(self, doc: dict[str, Any] | bytes, topic: str | None = None) -> None:
        payload = doc if isinstance(doc, bytes) else notification.encode(doc)
        self._sender.publish(topic or self.topic, payload)

    def wait_handled(self, count: int, timeout: float = 30) -> Wis2Subscriber:
        """Wait until ``count`` notifications besides the warm-up ones were handled."""
        subscriber = self.subscriber
        assert subscriber is not None
        assert wait_until(lambda: subscriber.handled - subscriber.outcomes["deletion"] >= count, timeout), \
            f"handled {dict(subscriber.outcomes)}, expected {count} besides the warm-up"
        return subscriber

    def files(self, count: int = 0) -> list[Message]:
        """The ``file`` messages announced so far, after waiting for ``count`` of them (the bus is
        asynchronous: one published may not be recorded yet)."""
        return self.recorder.wait_for(lambda m: m.subject == PUBLISH_TOPIC, count)

    def written(self) -> list[str]:
        """The files below the destination (partial ones too), as sorted relative paths."""
        return sorted(p.relative_to(self.destination).as_posix() for p in self.destination.rglob("*") if p.is_file())

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(15)
            assert not self._thread.is_alive(), "the WIS2 subscriber did not stop"
            self._thread = None
        if self.subscriber is not None:
            self.subscriber.seen.close()

    def close(self) -> None:
        self.stop()
        self._sender.close()
        self.recorder.close()
        self.output.stop()
