"""FtpMover against the shared mover contract: plain FTP (passive and active) and FTPS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from trollmoves_ftp.mover import FtpMover
from trollmoves_ftp.testing import FtpServerThread, fresh_dir, ftp_uri

from trollmoves_core.testing import MoverContract


class TestFtpContract(MoverContract):
    @pytest.fixture
    def mover(self) -> Iterator[FtpMover]:
        with FtpMover({"retry_delay": 0.01}) as mover:
            yield mover

    @pytest.fixture
    def remote_dir(self, ftp_server: FtpServerThread) -> str:
        return ftp_uri(ftp_server, fresh_dir(ftp_server, "contract"))

    @pytest.fixture
    def hashes_on_put(self) -> bool:
        return True

    @pytest.fixture
    def login_count(self, ftp_server: FtpServerThread) -> Callable[[], int]:
        return lambda: ftp_server.counters.logins


class TestFtpActiveModeContract(TestFtpContract):
    @pytest.fixture
    def mover(self) -> Iterator[FtpMover]:
        with FtpMover({"passive": "false", "retry_delay": 0.01}) as mover:
            assert not mover.passive
            yield mover


class TestFtpsContract(MoverContract):
    @pytest.fixture
    def mover(self, tls_cert: tuple[Path, Path]) -> Iterator[FtpMover]:
        with FtpMover({"ca_file": str(tls_cert[0]), "retry_delay": 0.01}) as mover:
            yield mover

    @pytest.fixture
    def remote_dir(self, ftps_server: FtpServerThread) -> str:
        return ftp_uri(ftps_server, fresh_dir(ftps_server, "contract"), scheme="ftps")

    @pytest.fixture
    def hashes_on_put(self) -> bool:
        return True

    @pytest.fixture
    def login_count(self, ftps_server: FtpServerThread) -> Callable[[], int]:
        return lambda: ftps_server.counters.logins
