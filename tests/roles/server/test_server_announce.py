"""What the server publishes: announcements, heartbeats, backlog, standalone mode, unpacking, deletion."""

from __future__ import annotations

import base64
import bz2
import datetime as dt
import gzip
import hashlib
import io
import tarfile
import time
from pathlib import Path

import pytest
from posttroll.message import Message
from support.bus import free_port, wait_until
from support.files import put_file
from support.reqrep import reply as request
from support.server import TOPIC, chain

NAME = "NOAA-19_202401020304.dat"


def test_announcement_fields_and_key_order(serve, dirs):
    origin, _ = dirs
    port = free_port()
    running = serve(chain(origin, port, info="sensor=foo;platforms=a,b"))
    put_file(origin / NAME)
    message = running.announced(NAME)
    assert message.subject == TOPIC
    assert message.type == "file"
    # upstream's keys in upstream's order, then ours (size and checksum, tests/roles/test_checksums.py)
    assert list(message.data) == ["sensor", "platforms", "platform_name", "start_time", "uri", "uid",
                                  "request_address", "size", "integrity"]
    content = (origin / NAME).read_bytes()
    assert message.data == {"sensor": "foo", "platforms": ["a", "b"], "platform_name": "NOAA-19",
                            "start_time": dt.datetime(2024, 1, 2, 3, 4), "uri": str(origin / NAME), "uid": NAME,
                            "request_address": f"127.0.0.1:{port}", "size": len(content),
                            "integrity": {"method": "sha256",
                                          "value": base64.b64encode(hashlib.sha256(content).digest()).decode()}}
    assert message.encode().split()[4] == "v1.2"


def test_hidden_empty_and_unmatched_files_are_not_announced(serve, dirs):
    origin, _ = dirs
    running = serve(chain(origin, free_port()))
    (origin / ".NOAA-19_202401020304.dat").write_text("hidden")
    (origin / "NOAA-19_202401020305.dat").write_text("")
    (origin / "readme.txt").write_text("no match")
    put_file(origin / "NOAA-20_202401020306.dat")  # a marker known to come after the others
    running.announced("NOAA-20_202401020306.dat")
    uids = [m.data["uid"] for m in running.announcements(atype="file")]
    assert uids == ["NOAA-20_202401020306.dat"]


def test_heartbeat_on_start(serve, dirs):
    origin, _ = dirs
    running = serve(chain(origin, free_port()))
    beats = running.recorder.wait_for(lambda m: m.type == "beat")
    assert beats[0].subject == "/heartbeat/move_it_server"
    assert beats[0].data == {"min_interval": 30}


@pytest.mark.parametrize("backlog", [True, False])
def test_backlog_announced_at_start_unless_disabled(serve, dirs, backlog):
    origin, _ = dirs
    for minute in range(3):
        put_file(origin / f"NOAA-19_2024010203{minute:02d}.dat")
    running = serve(chain(origin, free_port()), backlog=backlog)
    put_file(origin / "NOAA-20_202401020310.dat")  # marker: announced whatever the backlog setting
    running.announced("NOAA-20_202401020310.dat")
    expected = [f"NOAA-19_2024010203{minute:02d}.dat" for minute in range(3)] if backlog else []
    # the backlog is read in its own thread: the marker may come first
    uids = sorted(m.data["uid"] for m in running.announcements(len(expected) + 1, atype="file"))
    assert uids == sorted([*expected, "NOAA-20_202401020310.dat"])
    ping = request(running.address(), Message(TOPIC, "info"))
    assert len(ping.data["files"]) == len(uids)  # each file announced once


def test_polling_watcher_announces(serve, dirs):
    origin, _ = dirs
    running = serve(chain(origin, free_port(), watchdog_timeout=0.1), watcher="polling")
    put_file(origin / NAME)
    assert running.announced(NAME).data["uri"] == str(origin / NAME)


def test_standalone_message_shape(serve, dirs):
    origin, _ = dirs
    running = serve(chain(origin, info="sensor=foo"))
    put_file(origin / NAME)
    message = running.announced(f"ssh://{_host()}{origin / NAME}")
    assert message.type == "file"
    assert list(message.data) == ["filesystem", "uri", "uid", "sensor", "platform_name", "start_time", "size",
                                  "integrity"]
    assert message.data["size"] == (origin / NAME).stat().st_size
    assert message.data["filesystem"] == {"cls": "fsspec.implementations.sftp.SFTPFileSystem", "args": [],
                                          "host": _host(), "protocol": "ssh"}
    assert message.data["uri"] == f"ssh://{_host()}{origin / NAME}"
    assert "request_address" not in message.data
    assert not running.server.chains["chain"].requests


def test_standalone_tar_unpack_gives_dataset(serve, tmp_path):
    origin = tmp_path / "in"
    origin.mkdir()
    running = serve({"chain": {"origin": f"{origin}/{{name}}.tar", "topic": TOPIC, "unpack": "tar"}})
    archive = tmp_path / "t9.tar"
    _make_tar(archive, {"m1.txt": b"a", "m2.txt": b"b"})
    archive.rename(origin / "t9.tar")
    message = running.announcements(atype="dataset")[0]
    host = _host()
    assert list(message.data) == ["dataset", "name"]
    assert message.data["name"] == "t9"
    first = message.data["dataset"][0]
    assert first == {"filesystem": {"cls": "fsspec.implementations.tar:TarFileSystem", "protocol": "tar", "args": [],
                                    "fo": str(origin / "t9.tar"), "target_protocol": "ssh",
                                    "target_options": {"host": host}},
                     "uri": f"tar://m1.txt::ssh://{host}{origin}/t9.tar", "uid": "tar://m1.txt"}
    assert [d["uid"] for d in message.data["dataset"]] == ["tar://m1.txt", "tar://m2.txt"]


@pytest.mark.parametrize("kind, suffix, pack", [
    ("bzip", ".bz2", bz2.compress),
    ("gzip", ".gz", gzip.compress),
])
def test_compressed_file_is_unpacked_announced_and_served(serve, tmp_path, kind, suffix, pack):
    origin, work, out = tmp_path / "in", tmp_path / "work", tmp_path / "out"
    for d in (origin, work, out):
        d.mkdir()
    port = free_port()
    running = serve({"chain": {"origin": f"{origin}/{{name}}.dat{suffix}", "topic": TOPIC, "request_port": port,
                               "request_address": "127.0.0.1", "compression": kind, "working_directory": work,
                               "delete": "true", "remove_delay": 60}})
    put_file(origin / f"a1.dat{suffix}", pack(b"unpacked content"))
    message = running.announced("a1.dat")
    assert message.data["uri"] == str(work / "a1.dat")
    assert message.data["name"] == "a1"
    assert (work / "a1.dat").read_bytes() == b"unpacked content"
    assert wait_until(lambda: not (origin / f"a1.dat{suffix}").exists()), "delete = true keeps the archive"
    # upstream refused this push (its basename check did not match the unpacked name)
    reply = request(f"127.0.0.1:{port}", Message(TOPIC, "push", {**message.data, "destination": f"file://{out}/"}))
    assert reply.type == "file", reply.data
    assert (out / "a1.dat").read_bytes() == b"unpacked content"


def test_tar_compression_with_several_members_announces_a_dataset(serve, tmp_path):
    origin, work = tmp_path / "in", tmp_path / "work"
    origin.mkdir()
    work.mkdir()
    running = serve({"chain": {"origin": f"{origin}/{{name}}.tar", "topic": TOPIC, "request_port": free_port(),
                               "request_address": "127.0.0.1", "compression": "tar", "working_directory": work}})
    archive = tmp_path / "t1.tar"
    _make_tar(archive, {"m1.txt": b"1", "sub/m2.txt": b"2", "../evil": b"x"})
    archive.rename(origin / "t1.tar")
    _make_tar(tmp_path / "t2.tar", {"m3.txt": b"3", "m4.txt": b"4"})
    (tmp_path / "t2.tar").rename(origin / "t2.tar")
    message = running.announcements(atype="dataset")[0]
    assert message.data["name"] == "t2"  # t1 has an unsafe member: refused whole, never announced
    assert [{k: d[k] for k in ("uri", "uid", "size")} for d in message.data["dataset"]] == [
        {"uri": str(work / "m3.txt"), "uid": "m3.txt", "size": 1},
        {"uri": str(work / "m4.txt"), "uid": "m4.txt", "size": 1}]
    assert all(d["integrity"]["method"] == "sha256" for d in message.data["dataset"])
    assert not (tmp_path / "evil").exists()


def test_xrit_runs_the_configured_decompressor(serve, tmp_path):
    origin, work = tmp_path / "in", tmp_path / "work"
    origin.mkdir()
    work.mkdir()
    prog = tmp_path / "xRITDecompress"
    prog.write_text('#!/bin/sh\nname=$(basename "$1")\ncp "$1" "${name%??}__"\n')
    prog.chmod(0o755)
    running = serve({"chain": {"origin": f"{origin}/H-000-{{segment}}-C_", "topic": TOPIC,
                               "request_port": free_port(), "request_address": "127.0.0.1", "compression": "xrit",
                               "prog": prog, "working_directory": work}})
    put_file(origin / "H-000-MSG4-C_", b"xrit")
    message = running.announced("H-000-MSG4-__")
    assert message.data["uri"] == str(work / "H-000-MSG4-__")


def test_delete_after_push_and_after_ack(serve, dirs):
    origin, out = dirs
    running = serve(chain(origin, free_port(), delete="true", remove_delay=0.2))
    pushed = running.announced(put_file(origin / NAME).name)
    acked = running.announced(put_file(origin / "NOAA-20_202401020304.dat").name)
    kept = running.announced(put_file(origin / "NOAA-21_202401020304.dat").name)
    reply = request(running.address(), Message(TOPIC, "push", {**pushed.data, "destination": f"file://{out}/"}))
    assert reply.type == "file"
    assert request(running.address(), Message(TOPIC, "ack", acked.data)).type == "ack"
    assert wait_until(lambda: not (origin / NAME).exists() and not (origin / "NOAA-20_202401020304.dat").exists())
    assert (out / NAME).read_bytes() == b"payload\n"
    assert (origin / kept.data["uid"]).exists()
    # once deleted, it is no longer served
    reply = request(running.address(), Message(TOPIC, "push", {**pushed.data, "destination": f"file://{out}/x/"}))
    assert reply.type == "err"


def test_ack_for_an_unannounced_file_deletes_nothing(serve, dirs):
    origin, _ = dirs
    stray = origin / "NOAA-19_202401020304.dat"
    stray.write_text("was here before the server, backlog off")
    running = serve(chain(origin, free_port(), delete="true", remove_delay=0))
    marker = running.announced(put_file(origin / "NOAA-20_202401020304.dat").name)
    assert request(running.address(), Message(TOPIC, "ack", {"uri": str(stray), "uid": stray.name})).type == "ack"
    assert request(running.address(), Message(TOPIC, "ack", marker.data)).type == "ack"
    assert wait_until(lambda: not Path(marker.data["uri"]).exists())
    assert stray.exists()


def _host() -> str:
    import socket
    return socket.gethostname()


def _make_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_listen_chain_republishes_local_files_and_serves_them(serve, tmp_path):
    from trollmoves_roles.bus.posttroll import BusPublisher

    data_dir, out = tmp_path / "data", tmp_path / "out"
    data_dir.mkdir()
    upstream = BusPublisher(0, bind="127.0.0.1", name="producer")
    try:
        port = free_port()
        running = serve({"chain": {"listen": "/producer/", "topic": TOPIC, "request_port": port,
                                   "request_address": "127.0.0.1", "addresses": f"tcp://127.0.0.1:{upstream.port}"}})
        local = data_dir / "l1.nc"
        local.write_bytes(b"listened")

        def send_until_republished(data: dict, uid: str) -> Message:
            def arrived() -> bool:
                upstream.send(Message("/producer/x", "file", data))
                return any(isinstance(m.data, dict) and m.data.get("uid") == uid for m in running.recorder.messages)
            assert wait_until(arrived, timeout=10, interval=0.1)
            return running.announced(uid)

        message = send_until_republished({"uri": str(local), "uid": "l1.nc", "sensor": "s"}, "l1.nc")
        assert message.data == {"uri": str(local), "uid": "l1.nc", "sensor": "s",
                                "request_address": f"127.0.0.1:{port}"}
        # a remote file is skipped, and the chain keeps listening (upstream's listener stopped for good)
        (data_dir / "l2.nc").write_bytes(b"second")
        upstream.send(Message("/producer/x", "file", {"uri": "ssh://elsewhere/data/r.nc", "uid": "r.nc"}))
        upstream.send(Message("/producer/x", "file", {"uri": str(data_dir / "l2.nc"), "uid": "l2.nc"}))
        running.announced("l2.nc")
        assert not any(isinstance(m.data, dict) and m.data.get("uid") == "r.nc" for m in running.recorder.messages)
        push = Message(TOPIC, "push", {**message.data, "destination": f"file://{out}/"})
        reply = request(f"127.0.0.1:{port}", push)
        assert reply.type == "file", reply.data
        assert (out / "l1.nc").read_bytes() == b"listened"
    finally:
        upstream.stop()


def test_chain_check_restarts_a_watcher_whose_directory_was_replaced(serve, dirs):
    origin, _ = dirs
    running = serve(chain(origin, free_port()), loop=False)
    origin.rename(origin.with_name("old"))
    origin.mkdir()
    assert not running.server.chains["chain"].source.healthy()
    running.server.check_chains()
    assert running.server.chains["chain"].source.healthy()
    put_file(origin / NAME)
    assert running.announced(NAME).data["uri"] == str(origin / NAME)


def test_chain_check_gives_up_after_max_restarts(serve, dirs):
    from trollmoves_roles.server.service import ChainRecoveryError

    origin, _ = dirs
    running = serve(chain(origin, free_port()), loop=False, max_notifier_restarts=2)
    origin.rmdir()
    origin.write_text("a plain file where the directory was")  # cannot be watched, ever
    running.server.check_chains()
    with pytest.raises(ChainRecoveryError, match="2 times"):
        running.server.check_chains()


def test_serve_exits_1_when_a_watcher_cannot_be_restarted(serve, dirs):
    origin, _ = dirs
    running = serve(chain(origin, free_port()), chain_check_interval=0.05, max_notifier_restarts=2)
    origin.rmdir()
    origin.write_text("a plain file where the directory was")
    running.thread.join(20)
    assert running.status == [1]


def test_a_missing_origin_waits_and_is_watched_once_it_appears(serve, tmp_path, caplog):
    origin = tmp_path / "later" / "in"
    running = serve(chain(origin, free_port()), chain_check_interval=0.05, max_notifier_restarts=2)
    assert running.server.waiting_chains()
    assert f"[chain] origin directory {origin} does not exist; watching starts when it appears" in caplog.text
    origin.mkdir(parents=True)
    put_file(origin / NAME)
    assert running.announced(NAME).data["uri"] == str(origin / NAME)
    assert running.thread.is_alive() and not running.server.waiting_chains()


def test_an_origin_removed_while_running_is_waited_for_not_fatal(serve, dirs):
    origin, _ = dirs
    running = serve(chain(origin, free_port()), loop=False, max_notifier_restarts=2)
    origin.rmdir()
    for _ in range(3):  # more than max_notifier_restarts: a missing directory is no failure
        running.server.check_chains()
    assert running.server.waiting_chains()
    origin.mkdir()
    early = "NOAA-18_202401020304.dat"
    put_file(origin / early)
    (source,) = running.server.waiting_chains()
    assert source.resume(0.0)
    assert running.announced(early).data["uri"] == str(origin / early)  # the backlog
    put_file(origin / NAME)
    assert running.announced(NAME).data["uri"] == str(origin / NAME)


def test_a_waiting_chain_warns_again_periodically(serve, tmp_path, caplog):
    from trollmoves_roles.server.announcer import WAITING_WARN_SECONDS

    origin = tmp_path / "never"
    running = serve(chain(origin, free_port()), loop=False)
    (source,) = running.server.waiting_chains()
    caplog.clear()
    assert not source.resume(time.monotonic())  # too soon to say it again
    assert "still waiting" not in caplog.text
    assert not source.resume(time.monotonic() + WAITING_WARN_SECONDS)
    assert f"[chain] still waiting for origin directory {origin}" in caplog.text


def test_announced_records_round_trip(tmp_path):
    from trollmoves_roles.server.announced import AnnouncedFiles

    paths = {name: tmp_path / name for name in ("f0", "f1", "f2", "f3", "f4", "new")}
    for path in paths.values():
        path.write_bytes(b"x")
    first = AnnouncedFiles(capacity=3)
    for i in range(5):
        first.add(str(paths[f"f{i}"]), f"f{i}", TOPIC, "chain")
    assert list(first) == [str(paths[n]) for n in ("f2", "f3", "f4")]  # bounded, oldest dropped
    second = AnnouncedFiles(capacity=3)
    second.add(str(paths["new"]), "new", TOPIC, "chain")
    second.restore(first.records())
    assert list(second) == [str(paths[n]) for n in ("f3", "f4", "new")]
    assert second.newest(TOPIC, 2) == [f"{TOPIC}/new", f"{TOPIC}/f4"]


def test_records_of_deleted_files_are_dropped_as_announcing_goes_on(tmp_path):
    from trollmoves_roles.server.announced import AnnouncedFiles

    announced = AnnouncedFiles()
    kept = [tmp_path / f"kept{i}" for i in range(50)]
    deleted = [tmp_path / f"deleted{i}" for i in range(500)]
    for path in [*kept, *deleted]:
        path.write_bytes(b"x")
        announced.add(str(path), path.name, TOPIC, "chain")
    for path in deleted:
        path.unlink()
    assert len(announced) == 550  # nothing notices a deletion by itself
    later = [tmp_path / f"later{i}" for i in range(300)]
    for path in later:
        path.write_bytes(b"x")
        announced.add(str(path), path.name, TOPIC, "chain")
    assert not any(announced.get(str(path)) for path in deleted)
    assert all(announced.get(str(path)) for path in [*kept, *later])
    assert len(announced) == 350
    announced.add(str(kept[0]), kept[0].name, TOPIC, "chain")  # announced again: now the newest
    assert announced.newest(TOPIC, 1) == [f"{TOPIC}/kept0"]


def test_a_deleted_file_is_forgotten_at_once_with_its_listed_announcement(tmp_path):
    from trollmoves_roles.server.announced import AnnouncedFiles

    announced = AnnouncedFiles()
    paths = [tmp_path / f"f{i}.dat" for i in range(3)]
    for path in paths:
        path.write_bytes(b"x")
        announced.announce([(str(path), path.name)], TOPIC, "chain", message=(TOPIC, "file", {"uid": path.name}))
    announced.discard(str(paths[0]))
    announced.discard(str(paths[0]))  # told twice (the server's own deleter, then the watcher): no harm
    assert announced.get(str(paths[0])) is None and len(announced) == 2
    assert [item["data"]["uid"] for item in announced.listed("chain", 10)] == ["f2.dat", "f1.dat"]
    assert len(announced._listed["chain"]) == 2, "the oldest listed announcement, no longer served, is still held"


def test_forgotten_records_are_freed_not_kept_for_a_later_check(tmp_path):
    import gc

    from trollmoves_roles.server.announced import Announced, AnnouncedFiles

    announced = AnnouncedFiles()
    paths = [tmp_path / f"f{i}.dat" for i in range(400)]
    for path in paths:
        path.write_bytes(b"x")
        announced.add(str(path), path.name, TOPIC, "chain")  # each add queues older records to check
    for path in paths[:-1]:
        path.unlink()
        announced.discard(str(path))
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, Announced)]
    assert [a.path for a in alive] == [str(paths[-1])], f"{len(alive)} records still in memory"
