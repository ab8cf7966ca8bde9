"""Fixtures of the WIS2 tests: a Mosquitto and an nginx (HTTPS) per module, a served directory per test,
our servers (subprocesses)."""

from support.fixtures import servers  # noqa: F401 - fixture
from support.wis2_subscriber import broker, nginx, served  # noqa: F401 - fixtures
