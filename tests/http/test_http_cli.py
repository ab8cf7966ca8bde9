"""``trollmoves get`` and ``trollmoves move`` with the http plugin, run as real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from trollmoves_http.testing import PASSWORD, USER, Nginx

from trollmoves_core.checksum import file_digest

TROLLMOVES = Path(sys.executable).parent / "trollmoves"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    if not TROLLMOVES.exists():
        pytest.skip(f"{TROLLMOVES} is not installed")
    return subprocess.run([str(TROLLMOVES), *args], capture_output=True, text=True, timeout=60, check=False)


def test_plugins_lists_http_and_https() -> None:
    result = run("plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["trollmoves-http"]["error"] is None
    assert sorted(rows["trollmoves-http"]["movers"]) == ["http", "https"]


def test_get_over_https_with_a_verified_checksum(nginx: Nginx, dav_dir: str, tmp_path: Path) -> None:
    local = nginx.root / dav_dir.strip("/") / "hello.txt"
    local.parent.mkdir(parents=True)
    local.write_text("hello over https\n")
    digest = file_digest(local, "sha256")
    result = run("get", "-q", "-o", f"ca_file={nginx.ca_file}", "--size", str(digest.size), "--checksum",
                 f"sha256:{digest.value}", nginx.url(dav_dir + "hello.txt", tls=True), f"{tmp_path}/back/")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "back" / "hello.txt").read_text() == "hello over https\n"


def test_move_to_webdav_with_basic_auth(nginx: Nginx, tmp_path: Path) -> None:
    source = tmp_path / "up.txt"
    source.write_text("up\n")
    result = run("move", "-q", "-o", f"ca_file={nginx.ca_file}", "-o", f"username={USER}", "-o",
                 f"password={PASSWORD}", str(source), nginx.url("/private/cli/", tls=True))
    assert result.returncode == 0, result.stderr
    assert (nginx.root / "private" / "cli" / "up.txt").read_text() == "up\n"


def test_untrusted_certificate_exits_1_with_one_line(nginx: Nginx, tmp_path: Path) -> None:
    result = run("get", "-q", nginx.url("/anything.dat", tls=True), str(tmp_path / "x"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "TLS certificate verification failed" in lines[0]
    assert "Traceback" not in result.stderr


def test_a_bad_parameter_exits_2(nginx: Nginx, tmp_path: Path) -> None:
    result = run("get", "-o", "token=a", "-o", "token_file=/etc/hostname", nginx.url("/x"), str(tmp_path / "x"))
    assert result.returncode == 2
    assert "token: give either token or token_file" in result.stderr
    assert "Traceback" not in result.stderr
