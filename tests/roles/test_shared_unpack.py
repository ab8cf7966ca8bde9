"""The shared unpacker of both roles: staging, refusal of unsafe archives, names, errors."""

from __future__ import annotations

import gzip
import tarfile
import zipfile

import pytest
from trollmoves_roles.transfers.unpack import UnpackError, is_packed, unpack


def test_unsafe_zip_is_refused_whole_and_leaves_nothing(tmp_path):
    archive, out = tmp_path / "z.zip", tmp_path / "out"
    out.mkdir()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("first.txt", b"1")
        zipped.writestr("/abs.txt", b"x")
    with pytest.raises(UnpackError, match="outside"):
        unpack(archive, "zip", out)
    assert list(out.iterdir()) == []


def test_empty_tar_is_an_error_and_the_archive_is_kept(tmp_path):
    archive = tmp_path / "empty.tar"
    tarfile.open(archive, "w").close()
    with pytest.raises(UnpackError, match="nothing extracted"):
        unpack(archive, "tar", tmp_path, delete=True)
    assert archive.exists()


def test_gzip_without_its_suffix_gets_unpacked_suffix_and_delete_removes_it(tmp_path):
    (tmp_path / "data").write_bytes(gzip.compress(b"plain"))
    assert unpack(tmp_path / "data", "gz", tmp_path, delete=True) == [tmp_path / "data.unpacked"]
    assert (tmp_path / "data.unpacked").read_bytes() == b"plain" and not (tmp_path / "data").exists()


def test_failing_xrit_program_names_its_last_error_line(tmp_path):
    program = tmp_path / "xRITDecompress"
    program.write_text('#!/bin/sh\necho "cannot read $1" >&2\nexit 3\n')
    program.chmod(0o755)
    (tmp_path / "H-000-C_").write_bytes(b"x")
    with pytest.raises(UnpackError, match=r"status 3\): cannot read .*H-000-C_"):
        unpack(tmp_path / "H-000-C_", "xrit", tmp_path, program=str(program))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["H-000-C_", "xRITDecompress"]


@pytest.mark.parametrize(("name", "kind", "packed"), [("a.tar.gz", "gzip", False), ("a.tar.gz", "tar", True),
                                                       ("a.bz", "bzip", True), (".bz2", "bz2", False),
                                                       ("H-000-C_", "xrit", True), ("a.zip", "tar", False)])
def test_is_packed_by_name(name, kind, packed):
    assert is_packed(name, kind) is packed
