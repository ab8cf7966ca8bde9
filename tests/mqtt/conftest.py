"""Real Mosquitto brokers of :mod:`trollmoves_mqtt.testing` as fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("paho.mqtt")
from trollmoves_mqtt import testing as broker_testing
from trollmoves_mqtt.testing import PASSWORD, Mosquitto

if not broker_testing.available():
    pytest.skip("mosquitto is not installed (scripts/install-system-deps installs it as root)",
                allow_module_level=True)

ACL = """\
user server
topic readwrite trollmoves/#

user client
topic read trollmoves/#
topic write trollmoves/request/#
topic readwrite trollmoves/reply/#
"""


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """An anonymous plain broker shared by the session (tests use topics of their own)."""
    with Mosquitto(tmp_path_factory.mktemp("mosquitto")) as mosquitto:
        yield mosquitto


@pytest.fixture(scope="session")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """Users ``server`` and ``client`` (password :data:`PASSWORD`), the ACL above, plain and TLS listeners."""
    with Mosquitto(tmp_path_factory.mktemp("mosquitto-secure"), users={"server": PASSWORD, "client": PASSWORD},
                   acl=ACL, tls=True) as mosquitto:
        (mosquitto.directory / "pw").write_text(PASSWORD + "\n")
        yield mosquitto


@pytest.fixture
def fresh_broker(tmp_path) -> Iterator[Mosquitto]:
    """A broker of the test's own, which it may stop, kill and restart."""
    mosquitto = Mosquitto(tmp_path / "mosquitto").start()
    yield mosquitto
    mosquitto.stop()
