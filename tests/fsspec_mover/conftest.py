"""nginx's WebDAV (the server of :mod:`trollmoves_http.testing`) as the fsspec mover's real server.

One nginx for the session, over HTTP and HTTPS, with PROPFIND (webdav4 lists and stats with it);
each test moves under a fresh directory of ``/dav/``.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("webdav4")
from trollmoves_http import testing as nginx
from trollmoves_http.testing import Nginx

EXTRA_LOCATIONS = "location /not-implemented/ { return 501; }\n"
"""A server that will never do what is asked (501 Not Implemented): a permanent 5xx."""


@pytest.fixture(scope="session")
def dav_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    if not nginx.available() or not nginx.propfind_available():
        pytest.skip("needs nginx and libnginx-mod-http-dav-ext (scripts/install-system-deps)")
    with Nginx(tmp_path_factory.mktemp("nginx"), propfind=True, extra=EXTRA_LOCATIONS) as server:
        yield server


@pytest.fixture(params=[False, True], ids=["http", "https"])
def tls(request: pytest.FixtureRequest) -> bool:
    return request.param


@pytest.fixture
def dav_params(dav_server: Nginx) -> Callable[..., dict[str, Any]]:
    """``dav_params(path="/dav/", tls=False, **extra)``: connection parameters of an fsspec mover
    on ``path`` of the server: webdav4's ``base_url`` and, over HTTPS, the test CA to trust
    (httpx's ``verify``, an SSL context)."""
    def params(path: str = "/dav/", *, tls: bool = False, **extra: Any) -> dict[str, Any]:
        found: dict[str, Any] = {"base_url": dav_server.url(path, tls=tls), "retry_delay": 0.01, **extra}
        if tls:
            found["verify"] = ssl.create_default_context(cafile=dav_server.ca_file)
        return found
    return params


@pytest.fixture
def dav_dir(dav_server: Nginx) -> str:
    """A fresh, empty directory name under ``/dav/`` (created by the first upload)."""
    return f"t{os.urandom(4).hex()}"


@pytest.fixture
def dav_root(dav_server: Nginx) -> Path:
    """Where nginx keeps what is uploaded under ``/dav/``."""
    return dav_server.root / "dav"
