"""Repeated pushes (upstream clients re-send on timeout) transfer once."""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from posttroll.message import Message
from support.bus import free_port
from support.files import put_file
from support.reqrep import reply as request
from support.server import TOPIC, chain
from trollmoves_roles.observe.metrics import RoleMetrics
from trollmoves_roles.protocol.delivery import join_rel_path
from trollmoves_roles.transfers.service import FileJob, TransferService

from trollmoves_core.exceptions import TransferError
from trollmoves_core.file_mover import FileMover
from trollmoves_core.plugins import default_host
from trollmoves_core.uri import parse_uri, redact


def test_repeated_push_is_answered_without_a_second_transfer(serve, dirs):
    origin, out = dirs
    running = serve(chain(origin, free_port()))
    message = running.announced(put_file(origin / "NOAA-19_202401020304.dat").name)
    push = Message(TOPIC, "push", {**message.data, "destination": f"file://{out}/"})
    replies = [request(running.address(), push) for _ in range(3)]
    assert [r.type for r in replies] == ["file"] * 3
    assert running.server.transfers.transfers == 1
    other = Message(TOPIC, "push", {**message.data, "destination": f"file://{out}/other/"})
    assert request(running.address(), other).type == "file"
    assert running.server.transfers.transfers == 2


def test_concurrent_identical_pushes_share_one_transfer(serve, dirs):
    origin, out = dirs
    running = serve(chain(origin, free_port(), connection_parameters__mode="copy"))
    message = running.announced(put_file(origin / "NOAA-19_202401020304.dat", b"x" * 5_000_000).name)
    push = Message(TOPIC, "push", {**message.data, "destination": f"file://{out}/"})
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: request(running.address(), push), range(4)))
    assert [r.type for r in replies] == ["file"] * 4
    assert running.server.transfers.transfers == 1
    assert (out / "NOAA-19_202401020304.dat").stat().st_size == 5_000_000


class GatedMover(FileMover):
    """A real file mover that waits for ``gate`` before each transfer."""

    gate = threading.Event()
    started = threading.Event()

    def _put(self, local_path, target, progress):
        GatedMover.started.set()
        assert GatedMover.gate.wait(10)
        super()._put(local_path, target, progress)


def test_a_repeat_waits_for_the_running_transfer(tmp_path, monkeypatch):
    source = tmp_path / "a.dat"
    source.write_bytes(b"data")
    service = TransferService(2, host=default_host())
    mover = GatedMover({"mode": "copy"})
    monkeypatch.setattr(service._movers, "get", lambda uri, params, params_key=None: mover)
    try:
        first = service.push([FileJob(str(source))], f"file://{tmp_path}/out/", {})
        assert GatedMover.started.wait(10)
        repeat = service.push([FileJob(str(source))], f"file://{tmp_path}/out/", {})
        assert repeat is first
        assert not repeat.done()
        GatedMover.gate.set()
        assert repeat.result(10).uris == [f"file://{tmp_path}/out/a.dat"]
        assert service.transfers == 1
        assert (tmp_path / "out" / "a.dat").read_bytes() == b"data"
    finally:
        GatedMover.gate.set()
        service.close(5)


def test_one_mover_per_mover_class_and_parameters(tmp_path):
    service = TransferService(1, host=default_host())
    try:
        for index, params in enumerate([{}, {}, {"mode": "copy"}, {"mode": "copy"}]):
            (tmp_path / f"{index}.dat").write_bytes(b"x")
            done = service.push([FileJob(str(tmp_path / f"{index}.dat"))], f"file://{tmp_path}/out/", params)
            assert done.result(10).uris == [f"file://{tmp_path}/out/{index}.dat"]
        assert len(service._movers) == 2
    finally:
        service.close(5)
    assert len(service._movers) == 0


def test_failed_push_is_not_remembered(tmp_path):
    service = TransferService(1, host=default_host())
    try:
        missing = FileJob(str(tmp_path / "missing.dat"))
        first = service.push([missing], f"file://{tmp_path}/out/", {})
        assert first.exception(10) is not None
        (tmp_path / "missing.dat").write_bytes(b"late")
        second = service.push([missing], f"file://{tmp_path}/out/", {})
        assert second.result(10).uris == [f"file://{tmp_path}/out/missing.dat"]
    finally:
        service.close(5)


def test_destination_helpers():
    assert redact("ftp://user:pw@host:21/d/", drop_user=True) == "ftp://host:21/d/"
    assert redact("file:///d/", drop_user=True) == "file:///d/"
    assert redact("/plain/path", drop_user=True) == "/plain/path"
    assert join_rel_path("file:///out/p/", "sub/dir") == "file:///out/p/sub/dir"
    assert join_rel_path("/out/", "x") == "/out/x"
    assert join_rel_path("s3://bucket/d/", None) == "s3://bucket/d/"
    assert Path(join_rel_path("file:///out", "a/b.nc").split("://", 1)[1]) == Path("/out/a/b.nc")


def test_the_push_line_carries_the_byte_count_as_the_json_fields_do(serve, dirs, caplog):
    origin, out = dirs
    running = serve(chain(origin, free_port()))
    path = put_file(origin / "NOAA-19_202401020304.dat", b"x" * 1234)
    message = running.announced(path.name)
    caplog.set_level("INFO", logger="trollmoves_roles.transfers.service")
    assert request(running.address(), Message(TOPIC, "push", {**message.data, "destination": f"file://{out}/"})
                   ).type == "file"
    (record,) = [r for r in caplog.records if r.getMessage().startswith("Pushed ")]
    assert record.getMessage().startswith(f"Pushed {path} to file://{out}/{path.name}: 1234 bytes in ")
    assert record.bytes == 1234


class HostDirectoryMover(FileMover):
    """The file mover writing ``scheme://host/path`` under ``<root>/<host>/path``, so hosts fail over
    as servers do; 127.0.0.2 refuses (transiently) its second file."""

    BACKUP_HOSTS = True
    root = Path()

    def put(self, local_path, dest_uri, *, progress=None, expected=None):
        location = parse_uri(dest_uri)
        if location.host == "127.0.0.2" and os.path.basename(local_path) == "b.dat":
            raise TransferError(f"put {local_path} to {dest_uri} failed: connection refused", transient=True)
        return super().put(local_path, f"file://{self.root}/{location.host}{location.path}", progress=progress,
                           expected=expected)


def test_a_push_failing_over_midway_counts_each_file_once(tmp_path, monkeypatch, caplog):
    for name in ("a.dat", "b.dat", "c.dat"):
        (tmp_path / name).write_bytes(name.encode() * 10)
    metrics = RoleMetrics("server")
    service = TransferService(1, host=default_host(), metrics=metrics)
    HostDirectoryMover.root = tmp_path / "hosts"
    mover = HostDirectoryMover({"mode": "copy"})
    monkeypatch.setattr(service._movers, "get", lambda uri, params, params_key=None: mover)
    jobs = [FileJob(str(tmp_path / name)) for name in ("a.dat", "b.dat", "c.dat")]
    try:
        with caplog.at_level(logging.INFO, logger="trollmoves_roles.transfers.service"):
            delivery = service.push(jobs, "ftp://127.0.0.2/out/", {}, chain="c",
                                    backup_targets=["127.0.0.1"]).result(10)
    finally:
        service.close(5)
    assert delivery.host == "127.0.0.1"
    assert [os.path.basename(uri) for uri in delivery.uris] == ["a.dat", "b.dat", "c.dat"]
    assert (tmp_path / "hosts" / "127.0.0.2" / "out" / "a.dat").exists()  # landed on the primary, not counted
    assert sorted(p.name for p in (tmp_path / "hosts" / "127.0.0.1" / "out").iterdir()) == ["a.dat", "b.dat", "c.dat"]
    assert service.transfers == 3
    assert metrics.delivered.value(chain="c") == 3
    assert metrics.bytes.value(chain="c") == 3 * 50
    pushed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Pushed ")]
    assert len(pushed) == 3 and all("/127.0.0.1/" in line for line in pushed)


def test_a_copy_is_vouched_for_only_as_the_file_the_push_names(serve, dirs):
    """``copy_verified`` says the stored copy is the file the push's checksum names: a push still
    carrying the checksum of an earlier version (rewritten in place and announced again since) is
    copied, but without that word, so the client reads its copy back and finds the difference."""
    origin, out = dirs
    running = serve(chain(origin, free_port(), connection_parameters__mode="copy"))
    path = origin / "NOAA-19_202401020304.dat"
    first = running.announced(put_file(path, b"first version").name)
    push = Message(TOPIC, "push", {**first.data, "destination": f"file://{out}/a/"})
    assert request(running.address(), push).data.get("copy_verified") == "sha256"
    with open(path, "r+b") as rewrite:  # same inode: the server's record follows it
        rewrite.write(b"second version!")
    size = len(b"second version!")
    again = running.recorder.wait_for(lambda m: isinstance(m.data, dict) and m.data.get("size") == size, 1, 10)
    assert again and again[0].data["integrity"] != first.data["integrity"]
    stale = Message(TOPIC, "push", {**first.data, "destination": f"file://{out}/b/"})
    reply = request(running.address(), stale)
    assert reply.type == "file" and "copy_verified" not in reply.data
