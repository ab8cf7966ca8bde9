"""The FTP and FTPS servers of :mod:`trollmoves_ftp.testing` as session fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pyftpdlib")
from trollmoves_ftp.testing import FtpServerThread, make_cert, start_server


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA)."""
    pytest.importorskip("OpenSSL")
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def ftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FtpServerThread]:
    server = start_server(tmp_path_factory.mktemp("ftp-root"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ftps_server(tmp_path_factory: pytest.TempPathFactory, tls_cert: tuple[Path, Path]) -> Iterator[FtpServerThread]:
    server = start_server(tmp_path_factory.mktemp("ftps-root"), tls=tls_cert)
    yield server
    server.stop()
