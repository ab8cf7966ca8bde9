"""The nginx of :mod:`trollmoves_http.testing` as fixtures: one server per session, a fresh
WebDAV directory per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("requests")
from trollmoves_http import testing as nginx_testing
from trollmoves_http.mover import HttpMover
from trollmoves_http.testing import Nginx

if not nginx_testing.available():
    pytest.skip("nginx is not installed (scripts/install-system-deps installs it as root)", allow_module_level=True)


EXTRA_LOCATIONS = """
location /put-only/ { dav_methods PUT DELETE; create_full_put_path on; client_max_body_size 0; }
location /no-etag/ { etag off; }
"""
"""A WebDAV location without MOVE, as some upload servers are; files served with Last-Modified only."""


@pytest.fixture(scope="session")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """nginx on HTTP and HTTPS, shared by the session (tests work in directories of their own)."""
    with Nginx(tmp_path_factory.mktemp("nginx"), propfind=nginx_testing.propfind_available(),
               extra=EXTRA_LOCATIONS) as server:
        yield server


@pytest.fixture
def dav_dir(nginx: Nginx) -> str:
    """The path of an empty WebDAV directory of the test's own, ``/dav/<hex>/`` (not created yet)."""
    return f"/dav/{uuid.uuid4().hex}/"


@pytest.fixture
def http_params(nginx: Nginx) -> dict[str, Any]:
    """Connection parameters for a mover on the test server (its CA trusted, quick retries)."""
    return {"ca_file": str(nginx.ca_file), "retry_delay": 0.01}


@pytest.fixture
def mover(http_params: dict[str, Any]) -> Iterator[HttpMover]:
    with HttpMover(http_params) as mover:
        yield mover
