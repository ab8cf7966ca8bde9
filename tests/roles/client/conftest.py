"""Fixtures for the client role tests (helpers live in ``support.client`` and ``support.scripted``)."""

from support.fixtures import servers  # noqa: F401 - fixture
