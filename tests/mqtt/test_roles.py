"""The roles as real processes on a real Mosquitto (``--bus``): the mirror, the dispatcher (fed by
a standalone server), the downloader, and a client delivering a dataset. What goes through the
broker arrives byte-identical, and the roles' results are published on the broker."""

from __future__ import annotations

import io
import re
import socket
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import yaml
from posttroll.message import Message
from support.broker import BrokerRecorder, broker_publisher, wait_subscribed, with_query
from support.bus import free_port, wait_until
from support.files import write_file
from support.ini import write_ini
from support.processes import TrollmovesProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def bus(broker) -> str:
    return broker.url(prefix=f"roles{free_port()}")


@pytest.fixture
def recorder(bus):
    running = BrokerRecorder(bus)
    yield running
    running.close()


@pytest.fixture
def processes():
    running: list[TrollmovesProcess] = []
    yield running
    for process in reversed(running):
        if process.alive():
            process.stop()


def _id(bus: str, role: str) -> str:
    """A client id of the test's own (the session's broker log holds every test's)."""
    return f"{role}-{bus.rsplit('/', 1)[-1]}"


def _bus_of(bus: str, role: str) -> str:
    return with_query(bus, client_id=_id(bus, role))


def _server(root: Path, bus: str, processes: list, origin: str = "{name}.dat", **section: object) -> Path:
    """``trollmoves server`` on ``bus`` watching ``root/in`` for ``origin``; the directory."""
    inbox = root / "in"
    inbox.mkdir()
    ini = write_ini(root / "server.ini", {"srv": {"origin": f"{inbox}/{origin}", "topic": "/test/data",
                                                  **section}})
    server = TrollmovesProcess(["server", "-p", free_port(), "--bind", "127.0.0.1", "--disable-backlog",
                                "--announce-delay", "0", "--bus", _bus_of(bus, "srv"), ini],
                               root / "server.log")
    processes.append(server)
    server.wait_logged("Server running", 30)
    return inbox


def test_a_mirror_relays_a_servers_files_to_a_client(tmp_path, broker, bus, recorder, processes):
    inbox = _server(tmp_path, bus, processes, request_port=free_port(), request_address="127.0.0.1")
    mirror_ini = write_ini(tmp_path / "mirror.ini", {"m": {
        "providers": "127.0.0.1:9", "client_topic": "/test/data", "topic": "/mirror/data",
        "request_address": "127.0.0.1", "request_port": free_port(), "publish_port": 0,
        "destination": f"file://{tmp_path / 'staging'}/"}})
    mirror = TrollmovesProcess(["mirror", mirror_ini, "-p", free_port(), "--bind", "127.0.0.1", "-v",
                                "--bus", _bus_of(bus, "mirror")], tmp_path / "mirror.log")
    processes.append(mirror)
    mirror.wait_logged("Mirror running", 30)
    out = tmp_path / "out"
    client_ini = write_ini(tmp_path / "client.ini", {"test": {
        "providers": "127.0.0.1:9", "destination": f"{out}/", "topic": "/mirror/data", "publish_port": 0,
        "nameservers": "false", "bind_address": "127.0.0.1"}})
    client = TrollmovesProcess(["client", client_ini, "-v", "--bus", _bus_of(bus, "client")],
                               tmp_path / "client.log")
    processes.append(client)
    wait_subscribed(broker, _id(bus, "mirror"))
    wait_subscribed(broker, _id(bus, "client"))

    contents = {f"f{n}.dat": f"through the mirror {n}\n".encode() * (n + 1) for n in range(10)}
    for name, content in contents.items():
        write_file(inbox, name, content)
    assert wait_until(lambda: all((out / n).exists() for n in contents), 60), \
        mirror.log()[-2000:] + client.log()[-2000:]
    assert {n: (out / n).read_bytes() for n in contents} == contents
    delivered = lambda: Counter(re.findall(r"Delivered (f\d+\.dat) from", client.log()))  # noqa: E731
    assert wait_until(lambda: set(delivered()) == set(contents), 10), client.log()[-3000:]
    assert set(delivered().values()) == {1}
    # the mirror re-announced each file on its own topic, with its own request address
    relayed = recorder.wait_for(lambda m: m.subject == "/mirror/data" and "request_address" in m.data,
                                len(contents))
    assert {m.data["uid"] for m in relayed} >= set(contents)
    # and the client published its results on the broker
    results = recorder.wait_for(lambda m: m.type == "file" and m.subject == "/mirror/data"
                                and "request_address" not in m.data, len(contents))
    assert {Path(m.data["uri"]).name for m in results} == set(contents)


def test_a_client_delivers_every_file_of_a_dataset(tmp_path, broker, bus, recorder, processes):
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    # a tar unpacked by the server is announced as one dataset message of its members
    inbox = _server(tmp_path, bus, processes, origin="{name}.tar", request_port=free_port(),
                    request_address="127.0.0.1", compression="tar", working_directory=str(work))
    client_ini = write_ini(tmp_path / "client.ini", {"test": {
        "providers": "127.0.0.1:9", "destination": f"{out}/", "topic": "/test/data", "publish_port": 0,
        "nameservers": "false", "bind_address": "127.0.0.1"}})
    client = TrollmovesProcess(["client", client_ini, "-v", "--bus", _bus_of(bus, "client")],
                               tmp_path / "client.log")
    processes.append(client)
    wait_subscribed(broker, _id(bus, "client"))

    members = {f"m{n}.txt": f"member {n}\n".encode() * (100 * n + 1) for n in range(4)}
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    write_file(inbox, "d1.tar", archive.getvalue())
    assert wait_until(lambda: all((out / n).exists() for n in members), 60), client.log()[-3000:]
    assert {n: (out / n).read_bytes() for n in members} == members
    announced = recorder.wait_for(lambda m: m.type == "dataset" and "request_address" in m.data)
    assert [d["uid"] for d in announced[0].data["dataset"]] == list(members)
    result = recorder.wait_for(lambda m: m.type == "dataset" and "request_address" not in m.data)
    assert sorted(Path(d["uri"]).name for d in result[0].data["dataset"]) == sorted(members)


def test_a_dispatcher_delivers_what_a_standalone_server_announces(tmp_path, broker, bus, recorder, processes):
    inbox = _server(tmp_path, bus, processes)  # no request_port: standalone, announcements carry the uri
    out = tmp_path / "out"
    config = tmp_path / "dispatch.yaml"
    config.write_text(yaml.safe_dump({
        "posttroll_subscriber": {"subscribe_addresses": ["tcp://127.0.0.1:9"], "nameserver": False},
        "local": {"directory": str(out), "publish_topic": "/dispatched", "dispatch_configs": [{"topics": ["/test"]}]},
    }))
    dispatcher = TrollmovesProcess(["dispatcher", "-p", "0", "--publish-bind", "127.0.0.1", "-v",
                                    "--bus", _bus_of(bus, "disp"), config], tmp_path / "dispatcher.log")
    processes.append(dispatcher)
    wait_subscribed(broker, _id(bus, "disp"))

    contents = {f"f{n}.dat": f"dispatched {n}\n".encode() * (n + 1) for n in range(10)}
    for name, content in contents.items():
        write_file(inbox, name, content)
    assert wait_until(lambda: all((out / n).exists() for n in contents), 60), dispatcher.log()[-3000:]
    assert {n: (out / n).read_bytes() for n in contents} == contents
    announced = recorder.wait_for(lambda m: m.subject == "/dispatched" and m.type == "file", len(contents))
    assert sorted(m.data["uri"] for m in announced) == sorted(str(out / n) for n in contents)
    server_announced = [m for m in recorder.messages if m.subject == "/test/data" and m.type == "file"]
    assert sorted(m.data["uri"] for m in server_announced) == sorted(
        f"ssh://{socket.gethostname()}{inbox / n}" for n in contents)
    assert not any("request_address" in m.data for m in server_announced)


def test_a_downloader_fetches_what_is_announced_on_the_broker(tmp_path, broker, bus, recorder, processes):
    remote, destination = tmp_path / "remote", tmp_path / "downloads"
    remote.mkdir()
    config = tmp_path / "downloader.yaml"
    config.write_text(yaml.safe_dump({
        "subscribe-topic": ["/new"], "publish-topic": "/downloaded", "download_destination": str(destination),
        "subscriber_addresses": "tcp://127.0.0.1:9", "subscribe_nameserver": False, "publish_port": 0}))
    downloader = TrollmovesProcess(["downloader", config, "--publish-bind", "127.0.0.1", "-v",
                                    "--bus", _bus_of(bus, "dl")], tmp_path / "downloader.log")
    processes.append(downloader)
    wait_subscribed(broker, _id(bus, "dl"))
    source = broker_publisher(bus, "s3stalker")
    try:
        contents = {f"p{n}.nc": bytes(range(256)) * (n + 1) for n in range(5)}
        for name, content in contents.items():
            (remote / name).write_bytes(content)
            source.send(Message("/new/data", "file", {"uri": f"file://{remote / name}", "uid": name}))
        parts = [remote / "d1.nc", remote / "d2.nc"]
        for part in parts:
            part.write_bytes(part.name.encode() * 100)
        source.send(Message("/new/data", "dataset", {"dataset": [{"uri": str(p), "uid": p.name} for p in parts]}))
        everything = {**contents, **{p.name: p.read_bytes() for p in parts}}
        assert wait_until(lambda: all((destination / n).exists() for n in everything), 60), \
            downloader.log()[-3000:]
        assert {n: (destination / n).read_bytes() for n in everything} == everything
        files = recorder.wait_for(lambda m: m.subject == "/downloaded" and m.type == "file", len(contents))
        assert sorted(m.data["uri"] for m in files) == sorted(str(destination / n) for n in contents)
        dataset = recorder.wait_for(lambda m: m.subject == "/downloaded" and m.type == "dataset")
        assert [d["uri"] for d in dataset[0].data["dataset"]] == [str(destination / p.name) for p in parts]
    finally:
        source.stop()
