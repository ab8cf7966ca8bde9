"""Our mirror between a scripted internal server and raw external requests (real zmq, loopback)."""

from __future__ import annotations

import pytest
from posttroll.message import Message
from support.bus import wait_until
from support.mirror import (
    AsyncRequest,
    InternalServer,
    announce_until_mirrored,
    destination_path,
    request,
    staging_dirs,
)
from trollmoves_roles.protocol.messages import transfer_key

pytestmark = pytest.mark.timeout(120)


def push(uid: str, destination: str, subject: str = "/mirror/data", **extra: object) -> Message:
    data = {"name": uid.split(".", maxsplit=1)[0], "uri": f"/in/{uid}", "uid": uid, "request_address": "ignored:1",
            "destination": destination, **extra}
    return Message(subject, "push", data)


def test_push_fetches_from_internal_then_delivers_and_acks(mirror, announcer, tmp_path):
    internal = InternalServer({"a.dat": b"alpha" * 1000})
    _, recorder, port = mirror(remove_delay=0)
    try:
        mirrored = announce_until_mirrored(lambda: announcer.announce("a.dat", internal, sensor="x"), recorder,
                                           "a.dat")
        out = tmp_path / "out"
        reply = request(f"127.0.0.1:{port}", push("a.dat", f"file://{out}/"))
        assert isinstance(reply, Message) and reply.type == "file", reply
        assert (out / "a.dat").read_bytes() == b"alpha" * 1000
        assert reply.data["destination"] == f"file://{out}/"
        assert wait_until(lambda: internal.acks("a.dat"))
        assert wait_until(lambda: not staging_dirs(tmp_path / "staging"))
    finally:
        internal.stop()
    assert mirrored.subject == "/mirror/data"
    assert mirrored.data == {"name": "a", "uri": "/in/a.dat", "uid": "a.dat", "sensor": "x",
                             "request_address": f"127.0.0.1:{port}"}
    assert len(internal.pushes()) == 1
    assert internal.pushes()[0].data["destination"].startswith("file://")
    assert "/.mirror-" in internal.pushes()[0].data["destination"]


def test_two_external_clients_same_file_one_internal_fetch(mirror, announcer, tmp_path):
    internal = InternalServer({"b.dat": b"bravo" * 333}, hold=True)
    running, recorder, port = mirror()
    try:
        announce_until_mirrored(lambda: announcer.announce("b.dat", internal), recorder, "b.dat")
        first = AsyncRequest(f"127.0.0.1:{port}", push("b.dat", f"file://{tmp_path}/one/"))
        assert wait_until(lambda: internal.pushes("b.dat"))
        second = AsyncRequest(f"127.0.0.1:{port}", push("b.dat", f"file://{tmp_path}/two/"))
        assert wait_until(lambda: running.chain().requests.pending == 2)
        internal.release()
        replies = [first.result(), second.result()]
    finally:
        internal.stop()
    assert [r.type for r in replies] == ["file", "file"], replies
    assert (tmp_path / "one" / "b.dat").read_bytes() == (tmp_path / "two" / "b.dat").read_bytes() == b"bravo" * 333
    assert len(internal.pushes("b.dat")) == 1
    assert running.chain().stager.fetches == 1


def test_later_request_reuses_the_staged_copy(mirror, announcer, tmp_path):
    internal = InternalServer({"r.dat": b"reuse"})
    _, recorder, port = mirror()  # remove_delay 30: the copy stays for later requests
    try:
        announce_until_mirrored(lambda: announcer.announce("r.dat", internal), recorder, "r.dat")
        replies = [request(f"127.0.0.1:{port}", push("r.dat", f"file://{tmp_path}/{n}/")) for n in ("x", "y")]
    finally:
        internal.stop()
    assert [r.type for r in replies] == ["file", "file"]
    assert (tmp_path / "x" / "r.dat").read_bytes() == (tmp_path / "y" / "r.dat").read_bytes() == b"reuse"
    assert len(internal.pushes()) == 1
    assert len(staging_dirs(tmp_path / "staging")) == 1


def test_same_file_from_two_internal_servers_announced_once_second_used_on_error(mirror, announcer, tmp_path):
    broken, working = InternalServer({"d.dat": b"x"}, fail=True), InternalServer({"d.dat": b"delta"})
    running, recorder, port = mirror()
    try:
        announce_until_mirrored(lambda: announcer.announce("d.dat", broken), recorder, "d.dat")
        entry = running.chain().registry.get(transfer_key(["d.dat"]))

        def second_source_known() -> bool:
            announcer.announce("d.dat", working)
            return len(entry.sources) == 2

        assert wait_until(second_source_known, interval=0.1)
        reply = request(f"127.0.0.1:{port}", push("d.dat", f"file://{tmp_path}/out/"))
        assert wait_until(lambda: broken.acks() and working.acks())
    finally:
        broken.stop()
        working.stop()
    assert reply.type == "file", reply
    assert (tmp_path / "out" / "d.dat").read_bytes() == b"delta"
    assert [m.data["uid"] for m in recorder.messages if m.type == "file"] == ["d.dat"]
    assert len(broken.pushes()) == len(working.pushes()) == 1


def test_failed_fetch_answers_err_and_a_retry_fetches_again(mirror, announcer, tmp_path):
    internal = InternalServer({"e.dat": b"echo"}, fail=True)
    internal.failure = lambda message: f"disk on fire writing {message.data['destination']}"
    _, recorder, port = mirror(login="mirror:s3cr3t")
    try:
        announce_until_mirrored(lambda: announcer.announce("e.dat", internal), recorder, "e.dat")
        failed = request(f"127.0.0.1:{port}", push("e.dat", f"file://{tmp_path}/out/"))
        acks_after_failure = internal.acks()
        internal.fail = False
        retried = request(f"127.0.0.1:{port}", push("e.dat", f"file://{tmp_path}/out/"))
    finally:
        internal.stop()
    assert failed.type == "err" and "disk on fire writing file://mirror:***@" in failed.data, failed
    assert "s3cr3t" not in failed.data
    assert all("mirror:s3cr3t@" in m.data["destination"] for m in internal.pushes())  # sent, never shown
    assert acks_after_failure == []  # nothing delivered: the internal server keeps its file
    assert retried.type == "file", retried
    assert wait_until(lambda: internal.acks("e.dat"))
    assert (tmp_path / "out" / "e.dat").read_bytes() == b"echo"
    assert len(internal.pushes()) == 2
    assert len(staging_dirs(tmp_path / "staging")) == 1  # the failed fetch's directory is gone


def test_internal_success_without_the_file_is_a_failure(mirror, announcer, tmp_path):
    """An internal server on another host writes a file:// destination to its own disk."""
    internal = InternalServer({"g.dat": b"golf"})
    internal.handler = lambda message: Message(message.subject, "file" if message.type == "push" else "ack",
                                               message.data)
    _, recorder, port = mirror()
    try:
        announce_until_mirrored(lambda: announcer.announce("g.dat", internal), recorder, "g.dat")
        reply = request(f"127.0.0.1:{port}", push("g.dat", f"file://{tmp_path}/out/"))
    finally:
        internal.stop()
    assert reply.type == "err" and "g.dat did not arrive" in reply.data, reply
    assert not (tmp_path / "out" / "g.dat").exists()


def test_dataset_and_path_delivered_like_a_server(mirror, announcer, tmp_path):
    internal = InternalServer({"m1.dat": b"one", "m2.dat": b"two"})
    internal.handler = _dataset_handler(internal)
    _, recorder, port = mirror()
    dataset = [{"uri": "/in/m1.dat", "uid": "m1.dat"}, {"uri": "/in/m2.dat", "uid": "m2.dat"}]

    def mirrored() -> list[Message]:
        announcer.send(Message("/test/data", "dataset", {"name": "m", "dataset": dataset,
                                                         "request_address": internal.address}))
        return [m for m in recorder.messages if m.type == "dataset"]

    try:
        assert wait_until(mirrored, interval=0.2)
        announcement = mirrored()[0]
        reply = request(f"127.0.0.1:{port}", Message("/mirror/data", "push", dict(
            announcement.data, destination=f"file://{tmp_path}/out/")))
        single = request(f"127.0.0.1:{port}", Message("/mirror/data", "push", {
            "dataset": [dict(dataset[0], path="renamed.dat")], "destination": f"file://{tmp_path}/p/"}))
    finally:
        internal.stop()
    assert reply.type == "dataset", reply
    assert (tmp_path / "out" / "m1.dat").read_bytes() == b"one"
    assert (tmp_path / "out" / "m2.dat").read_bytes() == b"two"
    assert announcement.data["request_address"] == f"127.0.0.1:{port}"
    assert single.type == "err" and "not announced" in single.data  # a subset is not what was announced
    assert all("path" not in d for p in internal.pushes() for d in p.data.get("dataset", []))


def _dataset_handler(internal: InternalServer):
    def handle(message: Message):
        if message.type == "push":
            for item in message.data["dataset"]:
                (destination_path(message) / item["uid"]).write_bytes(internal.files[item["uid"]])
            return Message(message.subject, "dataset", message.data)
        return Message(message.subject, "ack", message.data)
    return handle


def test_path_key_appends_to_destination(mirror, announcer, tmp_path):
    internal = InternalServer({"h.dat": b"hotel"})
    _, recorder, port = mirror()
    try:
        announce_until_mirrored(lambda: announcer.announce("h.dat", internal), recorder, "h.dat")
        reply = request(f"127.0.0.1:{port}", push("h.dat", f"file://user:pw@localhost{tmp_path}/p/", path="h2.dat"))
    finally:
        internal.stop()
    assert reply.type == "file", reply
    assert reply.data["destination"] == f"file://localhost{tmp_path}/p/h2.dat"
    assert (tmp_path / "p" / "h2.dat").read_bytes() == b"hotel"
    assert "path" not in internal.pushes()[0].data


def test_bad_and_other_requests_answered_and_serving_continues(mirror, announcer, tmp_path):
    internal = InternalServer({"c.dat": b"charlie"})
    _, recorder, port = mirror(station="dmz1")
    address = f"127.0.0.1:{port}"
    try:
        announce_until_mirrored(lambda: announcer.announce("c.dat", internal), recorder, "c.dat")
        replies = {
            "garbage": request(address, b"this is not a posttroll message"),
            "no destination": request(address, push("c.dat", "")),
            "not announced": request(address, push("nope.dat", f"file://{tmp_path}/out/")),
            "bad path": request(address, push("c.dat", f"file://{tmp_path}/out/", path=3)),
            "not a dict": request(address, Message("/mirror/data", "push", "just text")),
            "bogus scheme": request(address, push("c.dat", "bogus://host/out/")),
            "ping": request(address, Message("/mirror/data", "ping")),
            "info": request(address, Message("/mirror/data", "info", {"max_count": 5})),
            "bad info": request(address, Message("/mirror/data", "info", {"max_count": "all"})),
            "ack": request(address, Message("/mirror/data", "ack", {"uid": "c.dat", "uri": "/in/c.dat",
                                                                    "destination": "ftp://u:secret@h/x/"})),
            "whatever": request(address, Message("/mirror/data", "whatever", {"a": 1})),
            "good": request(address, push("c.dat", f"file://{tmp_path}/out/")),
        }
    finally:
        internal.stop()
    assert all(isinstance(r, Message) for r in replies.values()), replies
    for name in ("garbage", "no destination", "not announced", "bad path", "not a dict", "bogus scheme", "bad info"):
        assert replies[name].type == "err", (name, replies[name])
    assert "not announced" in replies["not announced"].data
    assert "bogus" in replies["bogus scheme"].data
    assert replies["ping"].type == "pong" and replies["ping"].data == {"station": "dmz1"}
    assert replies["info"].type == "info" and replies["info"].data["files"] == ["/mirror/data/c.dat"]
    assert replies["ack"].type == "ack" and replies["ack"].data["destination"] == "ftp://h/x/"
    assert replies["whatever"].type == "unknown"
    assert replies["good"].type == "file"
    assert (tmp_path / "out" / "c.dat").read_bytes() == b"charlie"


def test_origin_filters_what_is_mirrored_and_info_fills_missing_keys(mirror, announcer):
    internal = InternalServer({})
    _, recorder, _ = mirror(origin="/staging/{name}.dat", info="sensor=seviri;platforms=a,b")

    def announce_both() -> None:
        announcer.announce("skip.txt", internal)
        announcer.announce("keep.dat", internal, sensor="avhrr")

    try:
        kept = announce_until_mirrored(announce_both, recorder, "keep.dat")
    finally:
        internal.stop()
    # one publisher, one connection, in order: skip.txt reached the mirror before keep.dat did
    assert [m.data["uid"] for m in recorder.messages if m.type == "file"] == ["keep.dat"]
    assert kept.data["sensor"] == "avhrr" and kept.data["platforms"] == ["a", "b"]


def test_own_announcements_and_non_announcements_ignored(mirror, announcer):
    internal = InternalServer({})
    running, recorder, port = mirror()

    def announce_all() -> None:
        announcer.send(Message("/test/data", "push", {"uid": "p.dat", "uri": "/in/p.dat", "request_address": "x:1"}))
        announcer.send(Message("/test/data", "file", {"uid": "loop.dat", "uri": "/in/loop.dat",
                                                      "request_address": f"127.0.0.1:{port}"}))
        announcer.send(Message("/test/data", "file", {"uid": "result.dat", "uri": "/out/result.dat"}))
        announcer.send(Message("/test/data", "file", {"uri": "/in/no-uid.dat", "request_address": "x:1"}))
        announcer.send(Message("/test/data", "file", "not a dict"))
        announcer.announce("last.dat", internal)

    try:
        announce_until_mirrored(announce_all, recorder, "last.dat")
    finally:
        internal.stop()
    assert [m.data["uid"] for m in recorder.messages if m.type == "file"] == ["last.dat"]
    assert len(running.chain().registry) == 1


def test_delivery_fails_over_to_the_backup_targets_like_a_server(mirror, announcer, tmp_path):
    ftp_testing = pytest.importorskip("trollmoves_ftp.testing")
    ftp = ftp_testing.start_server(tmp_path / "ftp-root")
    (ftp.root / "up").mkdir()
    internal = InternalServer({"a.dat": b"alpha"})
    _, recorder, port = mirror(remove_delay=0, connection_parameters__retry_delay="0.01")
    try:
        announce_until_mirrored(lambda: announcer.announce("a.dat", internal), recorder, "a.dat")
        # 127.0.0.2 refuses: the FTP server listens on 127.0.0.1 only
        primary = f"ftp://{ftp_testing.USER}:{ftp_testing.PASSWORD}@127.0.0.2:{ftp.port}/up/"
        reply = request(f"127.0.0.1:{port}", push("a.dat", primary, backup_targets=["127.0.0.1"]))
        assert isinstance(reply, Message) and reply.type == "file", reply
        assert reply.data["destination"] == f"ftp://127.0.0.1:{ftp.port}/up/"
        assert (ftp.root / "up" / "a.dat").read_bytes() == b"alpha"
    finally:
        internal.stop()
        ftp.stop()


def test_push_only_to_allowed_destinations_like_a_server(mirror, announcer, tmp_path):
    internal = InternalServer({"a.dat": b"alpha"})
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    _, recorder, port = mirror(remove_delay=0, allowed_destinations=f"{allowed}/** ftp://127.0.0.1/**")
    try:
        announce_until_mirrored(lambda: announcer.announce("a.dat", internal), recorder, "a.dat")
        reply = request(f"127.0.0.1:{port}", push("a.dat", f"file://{other}/"))
        assert isinstance(reply, Message) and reply.type == "err", reply
        assert "push refused" in reply.data and "allowed_destinations" in reply.data
        assert not (other / "a.dat").exists()
        # a backup host outside the patterns is refused too (no FTP server: nothing is tried)
        reply = request(f"127.0.0.1:{port}", push("a.dat", "ftp://127.0.0.1/in/", backup_targets=["127.0.0.2"]))
        assert isinstance(reply, Message) and reply.type == "err", reply
        assert "backup host 127.0.0.2" in reply.data
        reply = request(f"127.0.0.1:{port}", push("a.dat", f"file://{allowed}/sub/"))
        assert isinstance(reply, Message) and reply.type == "file", reply
        assert (allowed / "sub" / "a.dat").read_bytes() == b"alpha"
        assert wait_until(lambda: not staging_dirs(tmp_path / "staging"))
    finally:
        internal.stop()
