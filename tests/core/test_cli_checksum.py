"""``trollmoves get``/``move`` verify the copy with ``--size`` and ``--checksum`` (real subprocesses)."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from test_cli import run


def _checksum(content: bytes) -> str:
    return "sha256:" + base64.b64encode(hashlib.sha256(content).digest()).decode()


def test_get_with_the_announced_checksum_delivers(tmp_path: Path) -> None:
    content = os.urandom(5000)
    src = tmp_path / "remote" / "in.dat"
    src.parent.mkdir()
    src.write_bytes(content)
    result = run("get", f"file://{src}", f"{tmp_path}/local/", "--size", "5000", "--checksum", _checksum(content))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "local" / "in.dat").read_bytes() == content


def test_get_of_a_corrupted_file_fails_with_expected_and_found_and_leaves_nothing(tmp_path: Path) -> None:
    content = os.urandom(5000)
    src = tmp_path / "remote" / "in.dat"
    src.parent.mkdir()
    src.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))  # one bit flipped since the announcement
    result = run("get", f"file://{src}", f"{tmp_path}/local/", "--size", "5000", "--checksum", _checksum(content),
                 "-o", "retry_delay=0")
    assert result.returncode == 1
    *retries, line = result.stderr.strip().splitlines()
    assert len(retries) == 2 and all("retrying" in r for r in retries)  # 3 attempts, each copy discarded
    assert "does not match its announcement" in line and f"expected {_checksum(content)[7:]}" in line
    assert list((tmp_path / "local").iterdir()) == []


def test_move_of_a_file_of_another_size_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "in.dat"
    src.write_bytes(b"12345")
    result = run("move", str(src), f"{tmp_path}/out/", "--size", "4", "-o", "mode=copy")
    assert result.returncode == 1
    assert "size 5 bytes, expected 4" in result.stderr
    assert not (tmp_path / "out" / "in.dat").exists()


def test_malformed_checksum_option_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run("get", f"file://{tmp_path}/x", f"{tmp_path}/y", "--checksum", "md5:abc")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "trollmoves: error: --checksum: expected METHOD:BASE64 (method sha256 or sha512) with --size, got 'md5:abc'"]
