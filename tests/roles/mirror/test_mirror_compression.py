"""``compression`` on a mirror section, as a server does it: the new file is fetched and unpacked at
once, and the unpacked file(s) are what the mirror announces and serves (real zmq, loopback)."""

from __future__ import annotations

import bz2
import io
import logging
import tarfile

import pytest
from posttroll.message import Message
from support.bus import wait_until
from support.ini import write_ini
from support.mirror import InternalServer, announce_until_mirrored, mirror_section, request, staging_dirs
from trollmoves_roles.mirror.config import load_mirror_config

from trollmoves_core.exceptions import ConfigError

pytestmark = pytest.mark.timeout(120)


def push(uid: str, destination: str, **extra: object) -> Message:
    return Message("/mirror/data", "push", {"uri": f"/x/{uid}", "uid": uid, "request_address": "ignored:1",
                                            "destination": destination, **extra})


def tar_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def test_a_compressed_file_is_unpacked_before_it_is_announced_and_served(mirror, announcer, tmp_path):
    content = b"decompressed payload " * 500
    internal = InternalServer({"a.dat.bz2": bz2.compress(content)})
    running, recorder, port = mirror(compression="bzip", remove_delay=30)
    try:
        mirrored = announce_until_mirrored(lambda: announcer.announce("a.dat.bz2", internal, sensor="x"), recorder,
                                           "a.dat")
        # fetched at once, before any external request, and acked: the file is here now
        assert len(internal.pushes("a.dat.bz2")) == 1
        assert wait_until(lambda: internal.acks("a.dat.bz2"))
        out = tmp_path / "out"
        reply = request(f"127.0.0.1:{port}", push("a.dat", f"file://{out}/"))
        assert isinstance(reply, Message) and reply.type == "file", reply
        assert (out / "a.dat").read_bytes() == content
        refused = request(f"127.0.0.1:{port}", push("a.dat.bz2", f"file://{out}/"))
        assert isinstance(refused, Message) and refused.type == "err"
        assert "was not announced by this mirror" in refused.data
        info = request(f"127.0.0.1:{port}", Message("/mirror/data", "info", {}))
        assert isinstance(info, Message) and info.data["files"] == ["/mirror/data/a.dat"]
    finally:
        internal.stop()
    assert mirrored.type == "file"
    assert mirrored.data["uid"] == "a.dat" and mirrored.data["sensor"] == "x"
    assert mirrored.data["uri"].endswith("/a.dat") and mirrored.data["request_address"] == f"127.0.0.1:{port}"
    assert len(internal.pushes()) == 1  # one fetch, whatever was requested later
    assert [p.name for p in staging_dirs(tmp_path / "staging")] != []  # kept remove_delay for later requests
    assert running.chain().announced == 1


def test_an_archive_is_announced_and_served_as_a_dataset(mirror, announcer, tmp_path):
    members = {"m1.dat": b"first", "m2.dat": b"second"}
    internal = InternalServer({"pack.tar": tar_of(members)})
    _, recorder, port = mirror(compression="tar", remove_delay=30)
    try:
        assert wait_until(lambda: (announcer.announce("pack.tar", internal), [
            m for m in list(recorder.messages) if m.type == "dataset"])[1], timeout=20, interval=0.2)
        (dataset,) = [m for m in list(recorder.messages) if m.type == "dataset"]
        assert [item["uid"] for item in dataset.data["dataset"]] == ["m1.dat", "m2.dat"]
        assert "uri" not in dataset.data and "uid" not in dataset.data
        out = tmp_path / "out"
        data = {k: v for k, v in dataset.data.items() if k != "request_address"}
        reply = request(f"127.0.0.1:{port}", Message("/mirror/data", "push", {
            **data, "request_address": "ignored:1", "destination": f"file://{out}/"}))
        assert isinstance(reply, Message) and reply.type == "dataset", reply
        assert {p.name: p.read_bytes() for p in out.iterdir()} == members
    finally:
        internal.stop()
    assert len(internal.pushes()) == 1


def test_unpacked_files_are_removed_remove_delay_after_their_announcement(mirror, announcer, tmp_path):
    """As a server with compression: with remove_delay = 0 they are gone at once; a request says why."""
    internal = InternalServer({"z.dat.bz2": bz2.compress(b"zulu")})
    _, recorder, port = mirror(compression="bzip", remove_delay=0)
    try:
        announce_until_mirrored(lambda: announcer.announce("z.dat.bz2", internal), recorder, "z.dat")
        assert wait_until(lambda: not staging_dirs(tmp_path / "staging"))
        reply = request(f"127.0.0.1:{port}", push("z.dat", f"file://{tmp_path}/out/"))
    finally:
        internal.stop()
    assert isinstance(reply, Message) and reply.type == "err"
    assert reply.data == "z.dat was unpacked by this mirror and removed since (remove_delay 0 s)"


def test_a_file_that_does_not_unpack_is_logged_and_not_announced(mirror, announcer, tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    internal = InternalServer({"bad.dat.bz2": b"not bzip2 at all", "good.dat.bz2": bz2.compress(b"good")})
    running, recorder, _ = mirror(compression="bzip", remove_delay=0)
    try:
        announcer.announce("bad.dat.bz2", internal)
        assert wait_until(lambda: "Not announcing bad.dat.bz2: cannot unpack" in caplog.text, timeout=20)
        announce_until_mirrored(lambda: announcer.announce("good.dat.bz2", internal), recorder, "good.dat")
    finally:
        internal.stop()
    assert [m.data["uid"] for m in list(recorder.messages) if m.type == "file"] == ["good.dat"]
    assert running.chain().announced == 1
    assert wait_until(lambda: not staging_dirs(tmp_path / "staging"))


@pytest.mark.parametrize(("extra", "expected"), [
    ({"compression": "rar"}, "compression: expected one of"),
    ({"compression": "xrit"}, "prog: compression = xrit needs prog"),
])
def test_bad_compression_settings_are_refused(tmp_path, extra, expected):
    path = write_ini(tmp_path / "m.ini", {"m": mirror_section("127.0.0.1:1", 9999, **extra)})
    with pytest.raises(ConfigError, match=expected):
        load_mirror_config(path)
