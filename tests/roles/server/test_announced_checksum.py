"""The announced-file record keeps each file's size and checksum, across a restart, and the
server pushes with it; the chain's checksum key is checked."""

from __future__ import annotations

import pytest
from support.ini import write_ini
from trollmoves_roles.server.announced import AnnouncedFiles
from trollmoves_roles.server.config import check_config, load_config
from trollmoves_roles.state.journal import Journal

from trollmoves_core.checksum import file_digest
from trollmoves_core.exceptions import ConfigError
from trollmoves_core.plugins import default_host
from trollmoves_core.schema import Findings


def test_size_and_checksum_survive_a_restart_with_the_journal(tmp_path):
    path = tmp_path / "a.dat"
    path.write_bytes(b"announced bytes")
    digest = file_digest(path, "sha512")
    first = AnnouncedFiles()
    first.attach(Journal(tmp_path / "j.sqlite"))
    first.announce([(str(path), "a.dat")], "/t", "chain", digests=[digest])
    without = tmp_path / "b.dat"
    without.write_bytes(b"no checksum")
    first.add(str(without), "b.dat", "/t", "chain")
    first.detach()

    again = AnnouncedFiles()
    assert again.attach(Journal(tmp_path / "j.sqlite")) == 2
    record = again.get(str(path))
    assert record is not None and record.digest == digest
    assert again.get(str(without)).digest is None


@pytest.mark.parametrize(("value", "expected"), [("", "sha256"), ("SHA512", "sha512"), ("none", None),
                                                  ("false", None)])
def test_checksum_key(tmp_path, value, expected):
    section = {"origin": f"{tmp_path}/{{name}}.dat", "topic": "/t", "request_port": 9999}
    if value:
        section["checksum"] = value
    assert load_config(write_ini(tmp_path / "s.ini", {"c": section}))["c"].checksum == expected


def test_unknown_checksum_method_names_the_key(tmp_path):
    config = write_ini(tmp_path / "s.ini", {"c": {"origin": f"{tmp_path}/{{name}}.dat", "topic": "/t",
                                                  "request_port": 9999, "checksum": "md5"}})
    with pytest.raises(ConfigError, match=r"\[c\] checksum: expected one of sha256, sha512 or none, got 'md5'"):
        load_config(config)


def test_check_names_an_unknown_checksum_method(tmp_path):
    (tmp_path / "in").mkdir()
    config = write_ini(tmp_path / "s.ini", {"c": {"origin": f"{tmp_path}/in/{{name}}.dat", "topic": "/t",
                                                  "request_port": 9999, "checksum": "crc32"}})
    findings = Findings(str(config))
    check_config(findings, str(config), default_host())
    assert [(p.section, p.key, p.warning) for p in findings.problems] == [("c", "checksum", False)]
    assert "got 'crc32'" in findings.problems[0].message
