"""Which mover a scheme gets once trollmoves-fsspec is installed: the real entry-point registry,
with fsspec's real registry of implementations."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fsspec.registry import known_implementations, register_implementation
from trollmoves_fsspec.mover import FsspecMover, install_hint
from trollmoves_ftp.mover import FtpMover

from trollmoves_core import hookimpl
from trollmoves_core.exceptions import UnknownPluginError
from trollmoves_core.mover import Mover
from trollmoves_core.plugins import load_plugins

TROLLMOVES = str(Path(sys.executable).with_name("trollmoves"))


@pytest.fixture
def missing_implementation() -> Iterator[str]:
    """A protocol fsspec knows whose implementing package is not installed."""
    protocol = "tmmissing"
    register_implementation(protocol, "tm_not_installed_fs.NotInstalledFileSystem",
                            errtxt="Install tm-not-installed-fs to access it")
    yield protocol
    known_implementations.pop(protocol, None)


def test_a_scheme_no_plugin_claims_goes_to_fsspec() -> None:
    host = load_plugins()
    assert host.mover_class("webdav://dir/x.nc") is FsspecMover
    assert host.mover_class("memory://dir/x.nc") is FsspecMover


def test_a_plugin_wins_over_fsspec_for_its_scheme() -> None:
    """fsspec has an FTP filesystem too; trollmoves-ftp's mover is the one used."""
    assert load_plugins().mover_class("ftp://host/x") is FtpMover


def test_a_third_party_plugin_wins_over_fsspec() -> None:
    class OwnMemory(FsspecMover):
        NAME, SCHEMES, FALLBACK = "own-memory", ("memory",), False

    class Plugin:
        @hookimpl
        def trollmoves_register_movers(self) -> list[type[Mover]]:
            return [OwnMemory]

    assert load_plugins(extra=[Plugin()]).mover_class("memory://x/y") is OwnMemory


def test_a_disabled_plugin_of_ours_is_said_disabled_not_served_by_fsspec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROLLMOVES_DISABLE_PLUGINS", "ftp")
    with pytest.raises(UnknownPluginError) as info:
        load_plugins().mover_class("ftp://host/x")
    assert str(info.value) == ("no mover for 'ftp://': trollmoves-ftp is installed but disabled "
                               "(TROLLMOVES_DISABLE_PLUGINS names 'ftp')")


def test_a_scheme_fsspec_does_not_know_is_one_clear_line() -> None:
    with pytest.raises(UnknownPluginError) as info:
        load_plugins().mover_class("gopher://host/x")
    message = str(info.value)
    assert message.startswith("no mover for 'gopher://' (known: file, ftp, ")
    assert message.endswith("; fsspec knows no 'gopher' protocol either")
    assert "\n" not in message


def test_a_protocol_fsspec_knows_without_its_package_names_the_package(missing_implementation: str) -> None:
    with pytest.raises(UnknownPluginError) as info:
        load_plugins().mover_class(f"{missing_implementation}://bucket/x")
    assert str(info.value).endswith("; fsspec knows it: pip install tm_not_installed_fs")


@pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed here")
def test_gcs_without_gcsfs_says_pip_install_gcsfs() -> None:
    with pytest.raises(UnknownPluginError, match=r"; fsspec knows it: pip install gcsfs$"):
        load_plugins().mover_class("gcs://bucket/x")


@pytest.mark.parametrize("implementation, hint", [
    ({"class": "gcsfs.GCSFileSystem", "err": "Please install gcsfs to access Google Storage"}, "pip install gcsfs"),
    ({"class": "fsspec.implementations.sftp.SFTPFileSystem", "err": 'SFTPFileSystem requires "paramiko" to be '
      'installed'}, "pip install paramiko"),
    ({"class": "fsspec.implementations.http.HTTPFileSystem", "err": 'HTTPFileSystem requires "requests" and '
      '"aiohttp" to be installed'}, "pip install requests aiohttp"),
    ({"class": "fsspec.implementations.arrow.HadoopFileSystem", "err": "pyarrow and local java libraries "
      "required for HDFS"}, "pyarrow and local java libraries required for HDFS"),
])
def test_install_hints_from_fsspec_registry_texts(implementation: dict[str, str], hint: str) -> None:
    assert install_hint(implementation, ImportError("x")) == hint


def test_without_the_fsspec_plugin_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROLLMOVES_DISABLE_PLUGINS", "fsspec")
    with pytest.raises(UnknownPluginError) as info:
        load_plugins().mover_class("webdav://dir/x")
    assert str(info.value) == ("no mover for 'webdav://': trollmoves-fsspec is installed but disabled "
                               "(TROLLMOVES_DISABLE_PLUGINS names 'fsspec')")


def test_plugins_lists_the_fallback() -> None:
    result = subprocess.run([TROLLMOVES, "plugins", "--json"], capture_output=True, text=True, timeout=60,
                            check=True, env={**os.environ, "TROLLMOVES_DISABLE_PLUGINS": ""})
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["trollmoves-fsspec"]["movers"] == ["* (fsspec)"]


def test_move_to_an_unknown_protocol_exits_two_with_one_line(tmp_path: Path) -> None:
    source = tmp_path / "in.dat"
    source.write_bytes(b"x")
    result = subprocess.run([TROLLMOVES, "move", str(source), "gopher://host/dir/"], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("trollmoves: error: no mover for 'gopher://' (known: ")
    assert result.stderr.strip().endswith("fsspec knows no 'gopher' protocol either")
