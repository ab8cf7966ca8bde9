"""The ``trollmoves`` launcher with the ftp plugin installed, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.terminal import frames, run_on_terminal
from trollmoves_ftp.testing import PASSWORD, FtpServerThread, fresh_dir, ftp_uri

TROLLMOVES = Path(sys.executable).parent / "trollmoves"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    if not TROLLMOVES.exists():
        pytest.skip(f"{TROLLMOVES} is not installed")
    return subprocess.run([str(TROLLMOVES), *args], capture_output=True, text=True, timeout=60, check=False)


def test_plugins_lists_ftp_and_ftps() -> None:
    result = run("plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["trollmoves-ftp"]["error"] is None
    assert sorted(rows["trollmoves-ftp"]["movers"]) == ["ftp", "ftps"]


def test_move_then_get_over_ftp(ftp_server: FtpServerThread, tmp_path: Path) -> None:
    source = tmp_path / "hello.txt"
    source.write_text("hello over ftp\n")
    directory = fresh_dir(ftp_server, "cli")
    result = run("move", str(source), ftp_uri(ftp_server, directory + "sub/"))
    assert result.returncode == 0, result.stderr
    assert (ftp_server.root / directory.strip("/") / "sub" / "hello.txt").read_text() == "hello over ftp\n"

    result = run("get", ftp_uri(ftp_server, directory + "sub/hello.txt"), f"{tmp_path}/back/")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "back" / "hello.txt").read_text() == "hello over ftp\n"


def test_ftps_with_ca_file_option(ftps_server: FtpServerThread, tls_cert: tuple[Path, Path], tmp_path: Path) -> None:
    source = tmp_path / "secure.txt"
    source.write_text("over tls\n")
    directory = fresh_dir(ftps_server, "cli")
    result = run("move", "-o", f"ca_file={tls_cert[0]}", str(source), ftp_uri(ftps_server, directory, scheme="ftps"))
    assert result.returncode == 0, result.stderr
    assert (ftps_server.root / directory.strip("/") / "secure.txt").read_text() == "over tls\n"


def test_failed_login_exits_1_without_the_password(ftp_server: FtpServerThread, tmp_path: Path) -> None:
    source = tmp_path / "x.txt"
    source.write_text("x")
    result = run("move", "-v", str(source), ftp_uri(ftp_server, "/", password="not-the-" + PASSWORD))
    assert result.returncode == 1
    assert "530" in result.stderr
    assert "not-the-" not in result.stderr + result.stdout


def test_progress_of_a_get_shows_the_share_of_the_size_the_server_reports(ftp_server: FtpServerThread,
                                                                           tmp_path: Path) -> None:
    directory = fresh_dir(ftp_server, "cli")
    (ftp_server.root / directory.strip("/")).mkdir(parents=True, exist_ok=True)
    (ftp_server.root / directory.strip("/") / "big.dat").write_bytes(b"p" * 3 * 2**20)
    status, drawn = run_on_terminal("get", ftp_uri(ftp_server, directory + "big.dat"), f"{tmp_path}/")
    assert status == 0, drawn
    first, last = frames(drawn)[0], frames(drawn)[-1]
    assert "%" in first and "/3.0 MiB" in first and "/?" not in first  # the total from SIZE, before any byte
    assert "100%" in last and "3.0/3.0 MiB" in last
    assert (tmp_path / "big.dat").stat().st_size == 3 * 2**20
