"""Each distribution installs on its own: core alone, core + one plugin, core + a third-party mover.

Wheels are built from this checkout and installed into fresh virtualenvs without network
access (dependencies come from the wheelhouse ``make venv`` downloads), so this proves the
entry-point wiring of the real packages.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WHEELHOUSE = Path(sys.prefix) / "wheelhouse"

pytestmark = pytest.mark.slow


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, cwd=cwd,
                            check=False)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not WHEELHOUSE.is_dir():
        pytest.skip(f"WHEELHOUSE MISSING: {WHEELHOUSE} (run `make venv`, which downloads it)")
    out = tmp_path_factory.mktemp("wheels")
    # Built from a copy: a build in place leaves its egg-info in examples/, where tests that put the
    # example on sys.path would then find its entry points and register its mover in every test after.
    example = shutil.copytree(REPO / "examples" / "trollmoves-example-mover", tmp_path_factory.mktemp("src") / "ex",
                              ignore=shutil.ignore_patterns("build", "*.egg-info"))
    for project in (REPO, REPO / "plugins" / "trollmoves_ftp", example):
        run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, project)
    return out


def fresh_venv(path: Path, wheels: Path, *requirements: str) -> Path:
    venv.create(path, with_pip=True)
    run(path / "bin" / "python", "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels,
        "--find-links", WHEELHOUSE, *requirements)
    return path / "bin"


def plugin_rows(bin_dir: Path) -> dict[str, dict]:
    result = run(bin_dir / "trollmoves", "plugins", "--json")
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_core_plus_one_plugin_offers_only_that_plugins_schemes(wheels: Path, tmp_path: Path) -> None:
    bin_dir = fresh_venv(tmp_path / "venv", wheels, "trollmoves-core", "trollmoves-ftp")
    rows = plugin_rows(bin_dir)
    assert set(rows) == {"trollmoves-core", "trollmoves-ftp"}
    assert rows["trollmoves-ftp"]["movers"] == ["ftp", "ftps"]
    src = tmp_path / "a.dat"
    src.write_text("x")
    missing = subprocess.run([bin_dir / "trollmoves", "move", src, "sftp://host/in/"], capture_output=True,
                             text=True, timeout=60, check=False)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "trollmoves: error: no mover for 'sftp://': pip install trollmoves-ssh"


def test_third_party_mover_needs_no_change_to_the_core(wheels: Path, tmp_path: Path) -> None:
    bin_dir = fresh_venv(tmp_path / "venv", wheels, "trollmoves-core", "trollmoves-example-mover")
    rows = plugin_rows(bin_dir)
    assert rows["trollmoves-example-mover"]["movers"] == ["memory"]
    src = tmp_path / "a.dat"
    src.write_bytes(b"12345")
    result = run(bin_dir / "trollmoves", "move", src, "memory://box/in/")
    assert "memory://box/in/a.dat now holds 5 bytes" in result.stderr
