"""Every role (client, dispatcher, downloader, mirror) run as ``trollmoves ROLE --log-json
--metrics-port 0``: a JSON log line per delivered file with uid, source, destination, bytes and
duration; Prometheus metrics; ``trollmoves status CONFIG``; and v1.2 messages on the bus."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from posttroll.message import Message
from support.bus import BusRecorder, free_port, wait_until
from support.client import client_section
from support.files import write_file
from support.ini import write_ini
from support.metrics import counter, metrics
from support.processes import TROLLMOVES, TrollmovesProcess
from support.reqrep import request
from support.server import TOPIC, server_section
from trollmoves_roles.bus.posttroll import BusPublisher
from trollmoves_roles.observe.metrics import endpoint_file, read_endpoint
from trollmoves_roles.protocol.messages import MESSAGE_VERSION

pytestmark = pytest.mark.timeout(120)


class RoleProcess(TrollmovesProcess):
    """``trollmoves ROLE --log-json --metrics-port 0 ARGS... CONFIG``, its JSON log in a file."""

    def __init__(self, role: str, config: Path, log_path: Path, *args: str) -> None:
        self.role, self.config = role, config
        super().__init__([role, "--log-json", "--metrics-port", "0", *args, config], log_path)
        self.wait_ready(lambda: read_endpoint(config) is not None)
        self.url = str(read_endpoint(config)["url"])

    def entries(self) -> list[dict]:
        """The log's JSON objects (every line must be one)."""
        return [json.loads(line) for line in self.log().splitlines() if line.strip()]

    def transfers(self, uid: str) -> list[dict]:
        return [e for e in self.entries() if e.get("uid") == uid and "bytes" in e]

    def metrics(self) -> dict[str, float]:
        return metrics(self.url)

    def status(self) -> list[str]:
        shown = subprocess.run([TROLLMOVES, "status", str(self.config)], check=False, capture_output=True, text=True,
                               timeout=60)
        assert shown.returncode == 0, shown.stderr
        return shown.stdout.splitlines()


@pytest.fixture
def roles(runtime_dir):
    started: list[RoleProcess] = []

    def start(*args: object, **kwargs: object) -> RoleProcess:
        started.append(RoleProcess(*args, **kwargs))  # type: ignore[arg-type]
        return started[-1]

    yield start
    for process in started:
        process.stop()


def check_transfer_line(process: RoleProcess, uid: str, size: int, source: str, destination: str) -> None:
    """Exactly one JSON transfer line for ``uid`` with the expected fields."""
    (entry,) = process.transfers(uid)
    assert entry["level"] == "INFO" and entry["message"].startswith(f"Delivered {uid} from ")
    assert (entry["source"], entry["destination"], entry["bytes"]) == (source, destination, size)
    assert isinstance(entry["duration"], float) and entry["duration"] >= 0


def check_status(process: RoleProcess, chain: str, row: list[str]) -> None:
    """``trollmoves status CONFIG`` names the role and shows ``row`` (ANNOUNCED..FAILED) for ``chain``."""
    lines = process.status()
    assert lines[0].startswith(f"{process.role}  up ") and process.url in lines[0]
    shown = next(line.split() for line in lines if line.split()[:1] == [chain])
    assert shown[1:5] == row, lines


def check_stopped(process: RoleProcess) -> None:
    assert process.stop() == 0
    assert not endpoint_file(process.config).exists()


def warm_up(process: RoleProcess, source: BusPublisher) -> None:
    """Send heartbeats until the role counts our publisher as a peer (it is subscribed)."""
    assert wait_until(lambda: (source.heartbeat(0), counter(process.metrics(),
                                                            "trollmoves_peer_last_seen_age_seconds") > 0)[1],
                      timeout=20, interval=0.1), process.log()


def test_dispatcher(tmp_path, roles):
    out = tmp_path / "out"
    source = BusPublisher(0, bind="127.0.0.1", name="test-source")
    config = tmp_path / "dispatch.yaml"
    config.write_text(yaml.safe_dump({
        "posttroll_subscriber": {"subscribe_addresses": [f"tcp://127.0.0.1:{source.port}"], "nameserver": False},
        "local": {"host": "", "directory": str(out), "publish_topic": "/dispatched",
                  "dispatch_configs": [{"topics": [TOPIC]}]}}))
    dispatcher = roles("dispatcher", config, tmp_path / "dispatcher.log", "-p", str(free_port()), "--publish-bind",
                       "127.0.0.1")
    payload = tmp_path / "in" / "f1.dat"
    payload.parent.mkdir()
    payload.write_bytes(b"d" * 1000)
    try:
        warm_up(dispatcher, source)
        source.send(Message(TOPIC, "file", {"uri": str(payload), "uid": "f1.dat"}))
        assert wait_until(lambda: (out / "f1.dat").exists() and dispatcher.transfers("f1.dat"), 20), dispatcher.log()
        check_transfer_line(dispatcher, "f1.dat", 1000, str(payload), f"file://{out}/f1.dat")
        values = dispatcher.metrics()
        label = '{chain="local"}'
        assert values[f"trollmoves_files_requested_total{label}"] == 1
        assert values[f"trollmoves_files_delivered_total{label}"] == 1
        assert values[f"trollmoves_bytes_delivered_total{label}"] == 1000
        assert values[f"trollmoves_transfer_duration_seconds_count{label}"] == 1
        assert values["trollmoves_queue_length"] == 0
        assert wait_until(lambda: dispatcher.metrics().get(f"trollmoves_files_announced_total{label}") == 1, 10)
        check_status(dispatcher, "local", ["1", "1", "1", "0"])
    finally:
        source.stop()
    check_stopped(dispatcher)


def test_downloader(tmp_path, roles):
    out = tmp_path / "downloads"
    source = BusPublisher(0, bind="127.0.0.1", name="s3stalker")
    port = free_port()
    config = tmp_path / "downloader.yaml"
    config.write_text(yaml.safe_dump({
        "subscribe-topic": [TOPIC], "publish-topic": "/downloaded", "download_destination": str(out),
        "subscriber_addresses": f"tcp://127.0.0.1:{source.port}", "subscribe_nameserver": False,
        "publish_port": port}))
    downloader = roles("downloader", config, tmp_path / "downloader.log", "--publish-bind", "127.0.0.1")
    payload = tmp_path / "remote" / "obj.nc"
    payload.parent.mkdir()
    payload.write_bytes(b"o" * 777)
    try:
        warm_up(downloader, source)
        source.send(Message(TOPIC, "file", {"uri": f"file://{payload}", "uid": "obj.nc"}))
        assert wait_until(lambda: downloader.transfers("obj.nc"), 20), downloader.log()
        check_transfer_line(downloader, "obj.nc", 777, f"file://{payload}", str(out / "obj.nc"))
        values = downloader.metrics()
        assert counter(values, "trollmoves_files_requested_total") == 1
        assert counter(values, "trollmoves_files_delivered_total") == 1
        assert counter(values, "trollmoves_bytes_delivered_total") == 777
        assert counter(values, "trollmoves_transfer_duration_seconds_count") == 1
        assert wait_until(lambda: counter(downloader.metrics(), "trollmoves_files_announced_total") == 1, 10)
        check_status(downloader, "-", ["1", "1", "1", "0"])
    finally:
        source.stop()
    check_stopped(downloader)


def test_client_and_the_versions_it_publishes(tmp_path, dirs, roles, server_process):
    origin, out = dirs
    server = server_process(write_ini(tmp_path / "server.ini", {"srv": server_section(origin, free_port())}),
                            "--disable-backlog")
    port = free_port()
    config = write_ini(tmp_path / "client.ini", {"test": client_section(f"127.0.0.1:{server.pub_port}", f"{out}/",
                                                                       port)})
    client = roles("client", config, tmp_path / "client.log")
    recorder = BusRecorder([f"tcp://127.0.0.1:{port}"], ["/"])
    try:
        def delivered_probe() -> bool:
            name = f"probe{time.monotonic_ns()}.dat"
            write_file(origin, name, b"probe")
            return wait_until(lambda: client.transfers(name), timeout=2.0)

        assert wait_until(delivered_probe, timeout=40, interval=0), client.log()[-3000:]
        before = settled(client)
        write_file(origin, "real.dat", b"r" * 4321)
        assert wait_until(lambda: client.transfers("real.dat"), 20), client.log()[-3000:]
        check_transfer_line(client, "real.dat", 4321, f"{request_address(server)} {origin}/real.dat",
                            str(out / "real.dat"))
        assert wait_until(lambda: counter(client.metrics(), "trollmoves_files_announced_total")
                          == counter(before, "trollmoves_files_announced_total") + 1, 10)
        after = client.metrics()
        label = '{chain="test"}'
        for name, more in (("trollmoves_files_requested_total", 1), ("trollmoves_files_delivered_total", 1),
                           ("trollmoves_bytes_delivered_total", 4321),
                           ("trollmoves_transfer_duration_seconds_count", 1)):
            assert after[name + label] == before[name + label] + more, name
        assert counter(after, "trollmoves_files_failed_total") == 0
        delivered = int(after[f"trollmoves_files_delivered_total{label}"])
        check_status(client, "test", [str(delivered), str(delivered), str(delivered), "0"])
        assert recorder.wait_for(lambda m: m.type == "beat", timeout=35)  # the client's heartbeat
        mine = [m for m in recorder.messages if m.type in ("push", "ack", "file", "beat")]
        assert {m.type for m in mine} == {"push", "ack", "file", "beat"}
        assert {m.version for m in mine} == {MESSAGE_VERSION}  # posttroll alone writes v1.01 without datetimes
    finally:
        recorder.close()
    check_stopped(client)


def settled(client: RoleProcess) -> dict[str, float]:
    """The client's metrics once every probe it was announced is delivered, published and counted.

    Its transfer line is logged before the counters move, and a probe given up on by the test may
    still arrive later: a snapshot taken any earlier would count a probe as the next file.
    """
    values: dict[str, float] = {}

    def idle() -> bool:
        nonlocal values
        logged = sum(1 for e in client.entries() if str(e.get("uid", "")).startswith("probe") and "bytes" in e)
        values = client.metrics()
        counts = {counter(values, name) for name in ("trollmoves_files_delivered_total",
                                                      "trollmoves_files_announced_total")}
        return counts == {logged} and counter(values, "trollmoves_chain_pending") == 0

    assert wait_until(idle, timeout=20, interval=0.2), client.log()[-3000:]
    return values


def request_address(server) -> str:
    """The request address our server announces (``request_address`` and ``request_port`` of ``[srv]``)."""
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(server.config)
    return f"{parser['srv']['request_address']}:{parser['srv']['request_port']}"


def test_mirror(tmp_path, dirs, roles, server_process):
    origin, out = dirs
    internal = server_process(write_ini(tmp_path / "server.ini", {"srv": server_section(origin, free_port())}),
                              "--disable-backlog")
    request_port, pub_port = free_port(), free_port()
    config = write_ini(tmp_path / "mirror.ini", {"relay": {
        "providers": f"127.0.0.1:{internal.pub_port}", "client_topic": TOPIC, "topic": "/mirror/data",
        "request_address": "127.0.0.1", "request_port": request_port, "working_directory": tmp_path / "staging"}})
    (tmp_path / "staging").mkdir()
    mirror = roles("mirror", config, tmp_path / "mirror.log", "-p", str(pub_port), "--bind", "127.0.0.1")
    recorder = BusRecorder([f"tcp://127.0.0.1:{pub_port}"], ["/mirror/data"])
    try:
        def mirrored(name: str) -> Message | None:
            write_file(origin, name, b"m" * 2048)
            found = recorder.wait_for(lambda m: m.type == "file" and m.data.get("uid") == name, timeout=2.0)
            return found[0] if found else None

        announcement = None

        def one_mirrored() -> bool:
            nonlocal announcement
            announcement = mirrored(f"m{time.monotonic_ns()}.dat")
            return announcement is not None

        assert wait_until(one_mirrored, timeout=40, interval=0), mirror.log()[-3000:]
        uid = announcement.data["uid"]
        reply = request(f"127.0.0.1:{request_port}", Message("/mirror/data", "push", {
            **announcement.data, "destination": f"file://{out}/"}), timeout=20)
        assert reply is not None and reply.type == "file", reply
        assert (out / uid).read_bytes() == b"m" * 2048
        assert wait_until(lambda: mirror.transfers(uid), 10), mirror.log()[-3000:]
        check_transfer_line(mirror, uid, 2048, f"{request_address(internal)} {origin}/{uid}", f"file://{out}/{uid}")
        values = mirror.metrics()
        label = '{chain="relay"}'
        assert values[f"trollmoves_files_requested_total{label}"] == 1
        assert values[f"trollmoves_files_delivered_total{label}"] == 1
        assert values[f"trollmoves_bytes_delivered_total{label}"] == 2048
        announced = int(values[f"trollmoves_files_announced_total{label}"])
        assert announced >= 1
        assert any(k.startswith("trollmoves_peer_last_seen_age_seconds{peer=\"127.0.0.1") for k in values)
        check_status(mirror, "relay", [str(announced), "1", "1", "0"])
    finally:
        recorder.close()
    check_stopped(mirror)

