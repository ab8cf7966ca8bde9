"""``make dist``: a wheel and an sdist of every distribution in the Makefile's DISTS, whose
metadata carries the licence as an SPDX expression with its file, and the entry points the
pyproject.toml declares. Built without build isolation (the venv's setuptools, no network).
"""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def makefile_dists() -> list[Path]:
    text = (REPO / "Makefile").read_text()
    found = re.search(r"^DISTS\s*:?=\s*(.+)$", text, re.MULTILINE)
    assert found, "no DISTS line in the Makefile"
    return [REPO / part for part in found[1].split()]


@pytest.fixture(scope="module")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # -o: the venv counts as built (this test must not reinstall it); -C: from any working directory
    result = subprocess.run(["make", "-s", "-C", str(REPO), "-o", ".venv/.installed", "dist",
                             "BUILD_ARGS=--no-isolation", f"DIST_DIR={out}", f"BIN={BIN}"],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"make dist failed:\n{result.stdout}\n{result.stderr}"
    return out


@pytest.mark.parametrize("project", makefile_dists(), ids=lambda p: p.name if p != REPO else "core")
def test_each_distribution_has_a_wheel_and_sdist_with_spdx_licence_and_entry_points(dist_dir: Path,
                                                                                     project: Path) -> None:
    declared = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert declared["license"] == "GPL-3.0-or-later" and declared["license-files"] == ["LICENSE"]
    stem = declared["name"].replace("-", "_") + "-" + declared["version"]
    wheel = dist_dir / f"{stem}-py3-none-any.whl"
    sdist = dist_dir / f"{stem}.tar.gz"
    assert wheel.is_file() and sdist.is_file(), sorted(p.name for p in dist_dir.iterdir())

    with zipfile.ZipFile(wheel) as archive:
        info = f"{stem}.dist-info"
        metadata = HeaderParser().parsestr(archive.read(f"{info}/METADATA").decode())
        licence = archive.read(f"{info}/licenses/LICENSE").decode()
        entry_points = configparser.ConfigParser()
        entry_points.read_string(archive.read(f"{info}/entry_points.txt").decode())
    assert metadata["License-Expression"] == "GPL-3.0-or-later"
    assert metadata["License-File"] == "LICENSE" and metadata["License"] is None  # no legacy table form
    assert licence.lstrip().startswith("GNU GENERAL PUBLIC LICENSE") and "Version 3" in licence
    assert dict(entry_points["trollmoves"]) == declared["entry-points"]["trollmoves"]
    scripts = declared.get("scripts", {})
    if scripts:
        assert dict(entry_points["console_scripts"]) == scripts

    with tarfile.open(sdist) as archive:
        members = {member.name: member for member in archive.getmembers()}
        assert members[f"{stem}/LICENSE"].isfile()  # a regular file, even where the checkout has a link
        assert f"{stem}/pyproject.toml" in members


def test_make_dist_builds_exactly_the_listed_distributions(dist_dir: Path) -> None:
    names = {tomllib.loads((p / "pyproject.toml").read_text())["project"]["name"].replace("-", "_")
             for p in makefile_dists()}
    built = {p.name.split("-", 1)[0] for p in dist_dir.iterdir()}
    assert built == names
    assert len(list(dist_dir.glob("*.whl"))) == len(list(dist_dir.glob("*.tar.gz"))) == len(names)
