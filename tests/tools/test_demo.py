"""``make demo`` (scripts/demo.py) cleans up after itself unless asked to keep its directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DEMO), *args], capture_output=True, text=True, timeout=120,
                          check=False, env={**os.environ, "TMPDIR": str(tmp_path)})


def test_demo_removes_its_directory(tmp_path: Path) -> None:
    result = demo(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5/5 delivered, 5 byte-identical" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_demo_keeps_its_directory_when_asked(tmp_path: Path) -> None:
    result = demo(tmp_path, "--keep")
    assert result.returncode == 0, result.stdout + result.stderr
    [kept] = tmp_path.iterdir()
    assert f"kept {kept}" in result.stdout
    assert {"server.ini", "client.ini", "server.log", "client.log", "in", "out"} <= {p.name for p in kept.iterdir()}
    assert len(list((kept / "out").iterdir())) == 5
