"""Movers must not build a pathlib object per transferred file.

On Python 3.12 pathlib interns every path component it parses, and interned strings are never
freed: one ``Path`` per distinct file name grows the process forever (about 110 bytes a name).
A server moves millions of distinct names, so the mover contract passes ``str`` paths.
(:class:`~trollmoves_core.testing.MoverContract` checks every mover with a few names; this
checks the reference mover with many, in every mode.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trollmoves_core.file_mover import MODES, FileMover
from trollmoves_core.mover import Mover
from trollmoves_core.testing import describe_leftovers, pathlib_leftovers

FILES = 300


def round_trip(mover: Mover, source_dir: str, remote_dir: str, back_dir: str, names: list[str]) -> None:
    for name in names:
        mover.put(os.path.join(source_dir, name), remote_dir)
        mover.get(remote_dir + name, back_dir)


@pytest.mark.parametrize("mode", MODES)
def test_put_and_get_of_many_names_keep_nothing_in_pathlib(tmp_path: Path, mode: str) -> None:
    root = str(tmp_path)
    source_dir, out_dir, back_dir = (os.path.join(root, part) for part in ("src", "out", "back"))
    os.mkdir(source_dir)
    # Names nobody has interned yet: pathlib interns each name once, so they must be fresh.
    names = [f"S-NPP_{os.urandom(6).hex()}_{i:05d}.nc" for i in range(FILES + 1)]
    for name in names:
        with open(os.path.join(source_dir, name), "wb") as out:
            out.write(name.encode())
    with FileMover({"mode": mode}) as mover:
        round_trip(mover, source_dir, out_dir + "/", back_dir + "/", names[:1])  # lazy first-use state
        leftovers = pathlib_leftovers(lambda: round_trip(mover, source_dir, out_dir + "/", back_dir + "/",
                                                         names[1:]))
    assert sorted(os.listdir(back_dir)) == sorted(names)
    assert not leftovers, describe_leftovers(leftovers)


def test_get_returns_the_local_path_as_str(tmp_path: Path) -> None:
    source = tmp_path / "a.nc"
    source.write_bytes(b"data")
    mover = FileMover({"mode": "copy"})
    got = mover.get(str(source), f"{tmp_path}/dl/")
    assert got == f"{tmp_path}/dl/a.nc" and type(got) is str
    assert Path(got).read_bytes() == b"data"
    renamed = mover.get(str(source), tmp_path / "b.nc")
    assert renamed == f"{tmp_path}/b.nc" and type(renamed) is str
    (tmp_path / "existing").mkdir()
    assert mover.get(source.as_uri(), tmp_path / "existing") == f"{tmp_path}/existing/a.nc"


def test_get_of_a_source_without_a_file_name_into_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    from trollmoves_core.exceptions import TransferError

    with pytest.raises(TransferError, match="names no file") as info:
        FileMover().get("file:///", f"{tmp_path}/dl/")
    assert not info.value.transient
