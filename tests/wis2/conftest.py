"""Real Mosquitto brokers (from :mod:`trollmoves_mqtt.testing`) for the WIS2 tests; the subscriber's
nginx (HTTPS) and served directories come from :mod:`support.wis2_subscriber`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.fixtures import servers  # noqa: F401 - fixture

pytest.importorskip("paho.mqtt")
from support.wis2_subscriber import nginx, served  # noqa: F401 - fixtures
from trollmoves_mqtt import testing as broker_testing
from trollmoves_mqtt.testing import PASSWORD, Mosquitto
from trollmoves_wis2.testing import NotificationRecorder

WIS2_ACL = """\
user wis2
topic readwrite origin/a/wis2/#
"""


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """An anonymous plain broker shared by the session (tests use topics of their own)."""
    if not broker_testing.available():
        pytest.skip("mosquitto is not installed (scripts/install-system-deps installs it as root)")
    with Mosquitto(tmp_path_factory.mktemp("mosquitto")) as mosquitto:
        yield mosquitto


@pytest.fixture(scope="session")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """User ``wis2`` (password :data:`PASSWORD` in the file ``pw``), TLS, an ACL on ``origin/a/wis2/#``."""
    if not broker_testing.available():
        pytest.skip("mosquitto is not installed (scripts/install-system-deps installs it as root)")
    with Mosquitto(tmp_path_factory.mktemp("mosquitto-secure"), users={"wis2": PASSWORD}, acl=WIS2_ACL,
                   tls=True) as mosquitto:
        (mosquitto.directory / "pw").write_text(PASSWORD + "\n")
        yield mosquitto


@pytest.fixture
def recorder(broker: Mosquitto) -> Iterator[NotificationRecorder]:
    """Every notification under ``origin/a/wis2/se-smhi/#`` on :func:`broker`."""
    found = NotificationRecorder(broker.url(""), "origin/a/wis2/se-smhi/#")
    yield found
    found.close()
