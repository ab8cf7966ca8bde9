"""Our client against upstream trollmoves 0.19 servers (and an upstream client as hot-spare primary)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import time
from collections import Counter

import pytest
from posttroll.message import Message
from support.bus import BusRecorder, free_port, wait_until
from support.client import (
    HotSparePair,
    InProcessClient,
    UpstreamServer,
    client_section,
    prime,
    results,
    start_client,
    write_all,
)
from support.files import write_file
from support.ini import write_ini
from support.scripted import Announcer
from support.upstream import upstream_process  # noqa: F401 - fixture

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]


def payload(i: int) -> bytes:
    return os.urandom(64) + f"file {i}\n".encode() * (i + 1)


@pytest.fixture
def server(upstream_process, tmp_path):  # noqa: F811 - fixture use
    return UpstreamServer(upstream_process, tmp_path / "srv")


def test_moves_files_end_to_end_and_publishes_push_ack_file(server, tmp_path):
    client, recorder, out = start_client(tmp_path, server.provider)
    try:
        prime(lambda name: write_file(server.inbox, f"{name}.dat", b"probe"), recorder)
        contents = {f"f{i}.dat": payload(i) for i in range(5)}
        write_all(contents, server.inbox)
        assert len(recorder.wait_for(lambda m: m in results(recorder), count=5, timeout=30)) == 5
    finally:
        client.stop()
        recorder.close()
    for name, content in contents.items():
        assert (out / name).read_bytes() == content
    for name in contents:
        mine = [m for m in recorder.messages if m.data.get("uid") == name]
        assert [m.type for m in mine] == ["push", "ack", "file"], [m.encode() for m in mine]
        push, ack, result = mine
        assert push.subject == ack.subject == result.subject == "/test/data"
        assert push.data["destination"].startswith("file://") and push.data["destination"].endswith(f"{out}/")
        assert push.data["request_address"] == server.request_address
        assert ack.data["request_address"] == server.request_address and "destination" not in ack.data
        assert ack.data["uri"] == str(server.inbox / name)
        assert result.data["uri"] == str(out / name)
        assert result.data["origin"] == server.request_address
        assert "request_address" not in result.data and "destination" not in result.data
        assert result.data["name"] == name[:-4]


def test_login_never_published_but_sent(server, tmp_path):
    """The push published on the bus has no credentials; the server still gets the request."""
    client, recorder, out = start_client(tmp_path, server.provider, login="bob:s3cret")
    try:
        prime(lambda name: write_file(server.inbox, f"{name}.dat", b"probe"), recorder)
        write_file(server.inbox, "f1.dat", b"one")
        assert recorder.wait_for(lambda m: m in results(recorder), timeout=30)
    finally:
        client.stop()
        recorder.close()
    assert (out / "f1.dat").read_bytes() == b"one"
    assert not any("s3cret" in m.encode() or "bob@" in m.encode() for m in recorder.messages)


def test_two_servers_same_file_fetched_once_and_other_server_acked(upstream_process, tmp_path):  # noqa: F811
    # Two servers announce the same uids from their own directories and delete what they served or
    # got an ack for: the loser's copy disappears only if our client acked it.
    servers = [UpstreamServer(upstream_process, tmp_path / name, extra={"delete": "True", "remove_delay": "0"})
               for name in ("a", "b")]
    client, recorder, out = start_client(tmp_path, " ".join(s.provider for s in servers))
    try:
        prime(lambda name: write_file(servers[0].inbox, f"{name}.dat", b"probe"), recorder)
        contents = {f"f{i}.dat": payload(i) for i in range(10)}
        write_all(contents, *(server.inbox for server in servers))
        assert len(recorder.wait_for(lambda m: m in results(recorder), count=10, timeout=30)) == 10
        assert wait_until(lambda: not any((s.inbox / n).exists() for s in servers for n in contents), 30), \
            [str(p) for s in servers for p in s.inbox.iterdir()]
    finally:
        client.stop()
        recorder.close()
    pushes = Counter(m.data["uid"] for m in recorder.of_type("push"))
    assert all(pushes[name] == 1 for name in contents), pushes
    assert Counter(m.data["uid"] for m in results(recorder)) == Counter(contents.keys())
    copies = sum(s.process.log().count("Successfully copied") for s in servers)
    assert copies == len(contents) + 1  # + the probe
    for name, content in contents.items():
        assert (out / name).read_bytes() == content


def test_burst_of_200_delivered_exactly_once(server, tmp_path):
    client, recorder, out = start_client(tmp_path, server.provider, max_requests_in_flight=8)
    try:
        prime(lambda name: write_file(server.inbox, f"{name}.dat", b"probe"), recorder)
        contents = {f"f{i:03d}.dat": payload(i % 7) for i in range(200)}
        write_all(contents, server.inbox)
        recorder.wait_for(lambda m: m in results(recorder), count=200, timeout=90)
    finally:
        client.stop()
        recorder.close()
    assert Counter(m.data["uid"] for m in results(recorder)) == Counter(contents.keys())
    pushes = Counter(m.data["uid"] for m in recorder.of_type("push") if m.data["uid"][0] == "f")
    assert pushes == Counter(contents.keys())
    assert all((out / name).read_bytes() == content for name, content in contents.items())


def test_per_provider_topic(upstream_process, tmp_path):  # noqa: F811
    main = UpstreamServer(upstream_process, tmp_path / "a")
    other = UpstreamServer(upstream_process, tmp_path / "b", topic="/other/data")
    client, recorder, out = start_client(tmp_path, f"{main.provider} {other.provider}/other/data")
    recorder_other = BusRecorder([f"tcp://127.0.0.1:{client.chain('test').publisher.port}"], ["/other/"])
    try:
        prime(lambda name: write_file(main.inbox, f"{name}.dat", b"probe"), recorder)
        write_file(main.inbox, "fa.dat", b"from a")
        write_file(other.inbox, "fb.dat", b"from b")
        assert recorder.wait_for(lambda m: m in results(recorder), timeout=30)
        assert recorder_other.wait_for(lambda m: m.type == "file" and "origin" in m.data, timeout=30)
    finally:
        client.stop()
        recorder.close()
        recorder_other.close()
    assert (out / "fa.dat").read_bytes() == b"from a"
    assert (out / "fb.dat").read_bytes() == b"from b"
    result = next(m for m in recorder_other.messages if m.type == "file" and "origin" in m.data)
    assert result.subject == "/other/data" and result.data["origin"] == other.request_address


@pytest.mark.slow
def test_hot_spare_primary_killed_midway_every_file_once(server, tmp_path):
    pair = HotSparePair(tmp_path, server.provider, tmp_path / "out")
    contents = {f"f{i:03d}.dat": payload(i % 5) for i in range(60)}
    try:
        prime(lambda name: write_file(server.inbox, f"{name}.dat", b"probe"), pair.by_primary)
        pair.kill_primary_midway(server.inbox, contents, before=30, delivered=10)
    finally:
        pair.stop()
    pair.check(contents)


@pytest.mark.slow
def test_upstream_client_as_primary_ours_as_secondary(server, upstream_process, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    primary_port, secondary_port = free_port(), free_port()
    primary_ini = write_ini(tmp_path / "primary.ini", {"test": {
        "providers": server.provider, "destination": f"{out}/", "topic": "/test/data",
        "publish_port": primary_port, "nameservers": "false"}})
    secondary_ini = write_ini(tmp_path / "secondary.ini", {"test": client_section(
        f"{server.provider} 127.0.0.1:{primary_port}", f"{out}/", secondary_port, processing_delay=1,
        transfer_req_timeout=1)})
    primary_recorder = BusRecorder([f"tcp://127.0.0.1:{primary_port}"], ["/test/data"])
    ours_recorder = BusRecorder([f"tcp://127.0.0.1:{secondary_port}"], ["/test/data"])
    primary = upstream_process("move_it_client.py", [str(primary_ini)])
    secondary = InProcessClient(secondary_ini)
    contents = {f"f{i:02d}.dat": payload(i) for i in range(20)}
    names = list(contents)
    try:
        prime(lambda name: write_file(server.inbox, f"{name}.dat", b"probe"), primary_recorder, timeout=40)
        for name in names[:10]:
            write_file(server.inbox, name, contents[name])
        assert len(primary_recorder.wait_for(lambda m: m in results(primary_recorder), count=10, timeout=30)) == 10
        # the primary's acks settle them here: nothing taken over while it is alive
        assert wait_until(lambda: not secondary.chain("test").transfers, 10)
        assert results(ours_recorder) == []
        primary.stop()
        for name in names[10:]:
            write_file(server.inbox, name, contents[name])
        assert len(ours_recorder.wait_for(lambda m: m in results(ours_recorder), count=10, timeout=30)) == 10
    finally:
        secondary.stop()
        primary_recorder.close()
        ours_recorder.close()
    delivered = Counter(m.data["uid"] for m in results(primary_recorder) + results(ours_recorder))
    assert delivered == Counter(contents.keys())
    assert all((out / name).read_bytes() == content for name, content in contents.items())


def test_dataset_from_upstream_listen_server(upstream_process, tmp_path):  # noqa: F811
    """Upstream's `listen` chains republish dataset messages; our client fetches every file in one push."""
    source = Announcer()
    inbox = tmp_path / "srv" / "in"
    server = UpstreamServer(upstream_process, tmp_path / "srv", origin="", extra={
        "listen": "/in/data", "addresses": f"tcp://{source.provider}", "nameserver": "false"})
    contents = {"a.dat": payload(1), "b.dat": payload(2)}
    for name, content in contents.items():
        (inbox / name).write_bytes(content)
    dataset = {"name": "ds", "dataset": [{"uri": str(inbox / name), "uid": name} for name in contents]}
    client, recorder, out = start_client(tmp_path, server.provider)
    try:
        def delivered() -> bool:
            source.send(Message("/in/data", "dataset", dataset))  # until the server's subscription is up
            return bool(recorder.wait_for(lambda m: m.type == "dataset" and "origin" in m.data, timeout=1))
        assert wait_until(delivered, timeout=30, interval=0)
    finally:
        client.stop()
        recorder.close()
        source.stop()
    (result,) = [m for m in recorder.messages if m.type == "dataset" and "origin" in m.data]
    assert result.data["dataset"] == [{"uri": str(out / name), "uid": name} for name in contents]
    assert result.data["origin"] == server.request_address and result.data["name"] == "ds"
    assert all((out / name).read_bytes() == content for name, content in contents.items())
    assert len(recorder.of_type("push")) == 1


def test_client_side_tar_unpacking(upstream_process, tmp_path):  # noqa: F811
    root = tmp_path / "tsrv"
    server = UpstreamServer(upstream_process, root, origin=f"{root}/in/{{name}}.tar")
    client, recorder, out = start_client(tmp_path, server.provider, compression="tar")
    try:
        prime(lambda name: write_file(server.inbox, f"{name}.tar", tar_bytes({f"{name}.txt": b"p"})), recorder)
        write_file(server.inbox, "t1.tar", tar_bytes({"m1.txt": b"one", "m2.txt": b"two"}))
        results_t1 = recorder.wait_for(lambda m: m.type == "dataset" and m.data.get("name") == "t1", timeout=30)
    finally:
        client.stop()
        recorder.close()
    (result,) = results_t1
    assert result.data["dataset"] == [{"uid": "m1.txt", "uri": str(out / "m1.txt")},
                                      {"uid": "m2.txt", "uri": str(out / "m2.txt")}]
    assert "uid" not in result.data and result.data["origin"] == server.request_address
    assert (out / "m1.txt").read_bytes() == b"one" and (out / "m2.txt").read_bytes() == b"two"
    assert (out / "t1.tar").exists()  # delete is off, as upstream's default


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@pytest.mark.parametrize("echoed", [False, True])
def test_a_copy_from_an_upstream_server_is_still_read_back(upstream_process, tmp_path, echoed):  # noqa: F811
    """An upstream server never says its mover verified the copy (our servers' ``copy_verified``):
    our client reads its copy back. Here a producer announced a wrong checksum, which an upstream
    `listen` chain relays; the copy is found bad and never delivered, also when the message carried
    the key itself (an upstream server echoes it in its reply: that is not the server's word)."""
    source = Announcer()
    inbox = tmp_path / "srv" / "in"
    server = UpstreamServer(upstream_process, tmp_path / "srv", origin="", extra={
        "listen": "/in/data", "addresses": f"tcp://{source.provider}", "nameserver": "false"})
    good, bad = os.urandom(30_000), os.urandom(30_000)
    (inbox / "good.dat").write_bytes(good)
    (inbox / "bad.dat").write_bytes(bad)
    extra = {"copy_verified": "sha256"} if echoed else {}

    def announcement(name: str, announced: bytes) -> dict:
        digest = base64.b64encode(hashlib.sha256(announced).digest()).decode()
        return {"uri": str(inbox / name), "uid": name, "size": len(announced),
                "integrity": {"method": "sha256", "value": digest}, **extra}

    client, recorder, out = start_client(tmp_path, server.provider, give_up_after=5, retry_delay=0.5,
                                         max_retry_delay=1)
    try:
        def delivered() -> bool:
            source.send(Message("/in/data", "file", announcement("good.dat", good)))
            return bool(recorder.wait_for(lambda m: m.type == "file" and "origin" in m.data, timeout=1))
        assert wait_until(delivered, timeout=30, interval=0)
        source.send(Message("/in/data", "file", announcement("bad.dat", good)))  # bad.dat holds other bytes
        assert wait_until(lambda: any(m.type == "push" and m.data.get("uid") == "bad.dat" for m in recorder.messages),
                          timeout=20)
        time.sleep(3)  # pushed, read back, found bad, retried
    finally:
        client.stop()
        recorder.close()
        source.stop()
    assert (out / "good.dat").read_bytes() == good
    assert not (out / "bad.dat").exists()
    assert not [m for m in recorder.messages if m.type == "file" and m.data.get("uid") == "bad.dat"]
    assert len([m for m in recorder.messages if m.type == "push" and m.data.get("uid") == "bad.dat"]) >= 2
