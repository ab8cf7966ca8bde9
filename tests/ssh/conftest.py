"""A real OpenSSH sshd on 127.0.0.1 for the SSH mover tests (see trollmoves_ssh.testing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from trollmoves_ssh.testing import INSTALL_HINT, SshServer, sshd_available, start_sshd


def require_sshd() -> None:
    if not sshd_available():
        pytest.skip(f"SSHD MISSING: {INSTALL_HINT}")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """One sshd for the whole session; key login for the current user; VERBOSE log."""
    require_sshd()
    server = start_sshd(tmp_path_factory.mktemp("sshd"), password_auth=True)
    yield server
    server.stop()


@pytest.fixture
def private_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A dedicated sshd for tests that stop, restart or kill it."""
    require_sshd()
    server = start_sshd(tmp_path_factory.mktemp("private-sshd"))
    yield server
    server.stop()


@pytest.fixture
def ssh_params(sshd: SshServer) -> dict[str, str]:
    """Connection parameters that log in to ``sshd`` under the default (reject) host key policy."""
    return sshd.mover_params(retry_delay="0.01")


@pytest.fixture
def remote_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh directory the server writes into (the server runs on this machine), outside ``tmp_path``."""
    return tmp_path_factory.mktemp("remote")
