"""Client-side unpacking: tar, bzip, gzip, zip, xrit (with a stand-in decompressor program)."""

from __future__ import annotations

import bz2
import gzip
import io
import tarfile
import zipfile

import pytest
from trollmoves_roles.client.unpack import UnpackError, unpack_message


def make_tar(path, members):
    with tarfile.open(path, "w:gz" if path.name.endswith("gz") else "w") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


def no_hidden_leftovers(directory):
    return not [p for p in directory.iterdir() if p.name.startswith(".trollmoves_")]


def test_tar_with_two_members_becomes_dataset(tmp_path):
    make_tar(tmp_path / "t1.tar", {"m1.txt": b"one", "m2.txt": b"two"})
    data = unpack_message({"name": "t1", "uid": "t1.tar", "uri": str(tmp_path / "t1.tar"), "origin": "o"}, "tar")
    assert data == {"name": "t1", "origin": "o", "dataset": [{"uid": "m1.txt", "uri": str(tmp_path / "m1.txt")},
                                                             {"uid": "m2.txt", "uri": str(tmp_path / "m2.txt")}]}
    assert (tmp_path / "m2.txt").read_bytes() == b"two"
    assert (tmp_path / "t1.tar").exists() and no_hidden_leftovers(tmp_path)


def test_tgz_with_one_member_stays_a_file_and_delete_removes_archive(tmp_path):
    make_tar(tmp_path / "t2.tgz", {"only.dat": b"x" * 1000})
    data = unpack_message({"uid": "t2.tgz", "uri": str(tmp_path / "t2.tgz")}, "tar", delete=True)
    assert data == {"uid": "only.dat", "uri": str(tmp_path / "only.dat")}
    assert not (tmp_path / "t2.tgz").exists()


def test_tar_member_escaping_the_destination_is_refused(tmp_path):
    make_tar(tmp_path / "evil.tar", {"../evil.txt": b"x"})
    with pytest.raises(UnpackError, match="outside"):
        unpack_message({"uid": "evil.tar", "uri": str(tmp_path / "evil.tar")}, "tar")
    assert not (tmp_path.parent / "evil.txt").exists() and no_hidden_leftovers(tmp_path)


@pytest.mark.parametrize(("kind", "name", "packer"), [("bzip", "a.dat.bz2", bz2.compress),
                                                       ("gzip", "a.dat.gz", gzip.compress)])
def test_stream_decompression(tmp_path, kind, name, packer):
    content = b"satellite data " * 5000
    (tmp_path / name).write_bytes(packer(content))
    data = unpack_message({"uid": name, "uri": str(tmp_path / name)}, kind, block_size=16)
    assert data == {"uid": "a.dat", "uri": str(tmp_path / "a.dat")}
    assert (tmp_path / "a.dat").read_bytes() == content


def test_zip_members(tmp_path):
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as archive:
        archive.writestr("d/inner.txt", b"inner")
        archive.writestr("top.txt", b"top")
    data = unpack_message({"uid": "z.zip", "uri": str(tmp_path / "z.zip")}, "zip")
    assert [d["uri"] for d in data["dataset"]] == [str(tmp_path / "d" / "inner.txt"), str(tmp_path / "top.txt")]
    assert (tmp_path / "d" / "inner.txt").read_bytes() == b"inner"


def test_file_not_of_the_kind_is_left_alone(tmp_path):
    (tmp_path / "plain.dat").write_bytes(b"x")
    data = {"uid": "plain.dat", "uri": str(tmp_path / "plain.dat")}
    assert unpack_message(dict(data), "bzip") == data


def test_corrupt_archive_raises(tmp_path):
    (tmp_path / "bad.bz2").write_bytes(b"not bzip2 at all")
    with pytest.raises(UnpackError, match=r"bad\.bz2"):
        unpack_message({"uid": "bad.bz2", "uri": str(tmp_path / "bad.bz2")}, "bzip")
    assert not (tmp_path / "bad").exists() and no_hidden_leftovers(tmp_path)


def test_xrit_runs_the_decompressor_in_a_private_directory(tmp_path):
    # Stand-in for EUMETSAT's xRITDecompress: writes <input minus "C_">__ into its working directory.
    program = tmp_path / "xRITDecompress"
    program.write_text('#!/bin/sh\nsrc="${1#-s:}"\nname=$(basename "$src")\n'
                       'tr a-z A-Z < "$src" > "${name%C_}__"\n')
    program.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    name = "H-000-MSG4__-MSG4________-IR_108___-000001___-202401020304-C_"
    (out / name).write_bytes(b"compressed")
    data = unpack_message({"uid": name, "uri": str(out / name)}, "xrit", xrit_program=str(program))
    assert data["uid"] == name[:-2] + "__"
    assert (out / data["uid"]).read_bytes() == b"COMPRESSED"
    with pytest.raises(UnpackError, match="xritdecompressor"):
        unpack_message({"uid": name, "uri": str(out / name)}, "xrit")
