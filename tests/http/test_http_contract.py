"""HttpMover against the shared mover contract, on nginx's WebDAV over HTTP and HTTPS."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from trollmoves_http.mover import HttpMover
from trollmoves_http.testing import Nginx

from trollmoves_core.testing import MoverContract


class TestHttpContract(MoverContract):
    @pytest.fixture
    def mover(self, mover: HttpMover) -> HttpMover:
        return mover

    @pytest.fixture
    def remote_dir(self, nginx: Nginx, dav_dir: str) -> str:
        return nginx.url(dav_dir)

    @pytest.fixture
    def hashes_on_put(self) -> bool:
        return True

    @pytest.fixture
    def login_count(self, nginx: Nginx) -> Callable[[], int]:
        return nginx.connections


class TestHttpsContract(TestHttpContract):
    @pytest.fixture
    def remote_dir(self, nginx: Nginx, dav_dir: str) -> str:
        return nginx.url(dav_dir, tls=True)
