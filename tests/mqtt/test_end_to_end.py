"""``trollmoves server`` and ``trollmoves client`` as real processes talking only through a real
Mosquitto (``--bus``): no ZeroMQ connection between them."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from support.bus import free_port, wait_until
from support.files import write_file
from support.ini import write_ini
from support.metrics import metrics
from support.processes import TrollmovesProcess

pytestmark = pytest.mark.slow


class Pair:
    """A server watching ``in/`` and a client delivering to ``out/``, both on ``bus``."""

    def __init__(self, root: Path, bus: str, client_id: str = "e2e-client", *, in_config: bool = False) -> None:
        self.inbox, self.out = root / "in", root / "out"
        self.inbox.mkdir(parents=True)
        pub_port = free_port()
        server_ini = write_ini(root / "server.ini", {"srv": {
            "origin": f"{self.inbox}/{{name}}.dat", "request_port": free_port(), "request_address": "127.0.0.1",
            "topic": "/test/data", **({"bus": bus} if in_config else {})}})
        client_bus = bus + ("&" if "?" in bus else "?") + f"client_id={client_id}"
        client_ini = write_ini(root / "client.ini", {"test": {
            "providers": f"127.0.0.1:{pub_port}", "destination": f"{self.out}/", "topic": "/test/data",
            "publish_port": free_port(), "nameservers": "false", "bind_address": "127.0.0.1",
            **({"bus": client_bus} if in_config else {})}})
        self.server = TrollmovesProcess(["server", "-p", pub_port, "--bind", "127.0.0.1", "--disable-backlog",
                                         "--announce-delay", "0", *([] if in_config else ["--bus", bus]), server_ini],
                                        root / "server.log")
        self.server.wait_logged("Server running", 30)
        metrics_port = free_port()
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.client = TrollmovesProcess(["client", client_ini, "-v", "--metrics-port", metrics_port,
                                         *([] if in_config else ["--bus", client_bus])], root / "client.log")
        self.wait_client()

    def wait_client(self) -> None:
        self.client.wait_logged("Subscribing to", 30)
        # the subscription is made once the broker answered: prove it with a file
        probe = f"probe{Counter(self.client.log())['P']}"
        write_file(self.inbox, f"{probe}.dat", b"probe")
        assert wait_until((self.out / f"{probe}.dat").exists, 30), self.client.log()[-3000:]

    def delivered(self) -> Counter:
        return Counter(re.findall(r"Delivered (f\d+\.dat) from", self.client.log()))

    def stop(self) -> None:
        for process in (self.client, self.server):
            process.stop()


@pytest.fixture
def restartable_pair(tmp_path, fresh_broker):
    running = Pair(tmp_path, fresh_broker.url(prefix="restart"))
    yield running, fresh_broker
    running.stop()


@pytest.fixture
def pair(tmp_path, broker):
    running = Pair(tmp_path, broker.url(prefix=f"e2e{free_port()}"))
    yield running
    running.stop()


def test_single_file_and_a_burst(pair):
    contents = {f"f{n}.dat": f"file {n}\n".encode() * (n + 1) for n in range(60)}
    write_file(pair.inbox, "f0.dat", contents["f0.dat"])
    assert wait_until((pair.out / "f0.dat").exists, 30), pair.client.log()[-3000:]
    for name, content in contents.items():
        if name != "f0.dat":
            write_file(pair.inbox, name, content)
    assert wait_until(lambda: all((pair.out / n).exists() for n in contents), 60), pair.client.log()[-3000:]
    assert {n: (pair.out / n).read_bytes() for n in contents} == contents
    assert wait_until(lambda: len(pair.delivered()) == len(contents), 10)
    assert set(pair.delivered().values()) == {1}


def test_files_announced_while_the_client_is_stopped_arrive_after_its_restart(pair):
    pair.client.stop()
    contents = {f"f{n}.dat": f"while down {n}\n".encode() for n in range(25)}
    for name, content in contents.items():
        write_file(pair.inbox, name, content)
    assert wait_until(lambda: pair.server.log().count("announc") >= 1, 10)
    pair.client.start()
    assert wait_until(lambda: all((pair.out / n).exists() for n in contents), 60), pair.client.run_log()[-3000:]
    assert {n: (pair.out / n).read_bytes() for n in contents} == contents
    assert wait_until(lambda: len(pair.delivered()) == len(contents), 10)
    assert set(pair.delivered().values()) == {1}


def test_a_wrong_password_stops_the_server_with_one_line(tmp_path, secure_broker):
    (tmp_path / "in").mkdir()
    (tmp_path / "pw").write_text("not-the-password\n")
    ini = write_ini(tmp_path / "server.ini", {"srv": {
        "origin": f"{tmp_path}/in/{{name}}.dat", "request_port": free_port(), "request_address": "127.0.0.1",
        "topic": "/test/data"}})
    bus = secure_broker.url(user="server", password_file=str(tmp_path / "pw"))
    server = TrollmovesProcess(["server", "-p", free_port(), "--bind", "127.0.0.1", "--bus", bus, ini],
                               tmp_path / "server.log")
    assert server.proc.wait(30) == 2
    log = server.log()
    assert "refused the connection" in log and "Traceback" not in log and "not-the-password" not in log
    assert len([line for line in log.splitlines() if "refused" in line]) == 1


def test_a_bus_without_the_plugin_scheme_is_one_line(tmp_path):
    (tmp_path / "in").mkdir()
    ini = write_ini(tmp_path / "server.ini", {"srv": {
        "origin": f"{tmp_path}/in/{{name}}.dat", "request_port": free_port(), "topic": "/test/data"}})
    server = TrollmovesProcess(["server", "--bus", "amqp://broker/x", ini], tmp_path / "server.log")
    assert server.proc.wait(30) != 0
    assert "Traceback" not in server.log() and "amqp" in server.log()


def test_the_bus_key_in_the_configs_does_what_the_option_does(tmp_path, broker):
    pair = Pair(tmp_path, broker.url(prefix=f"key{free_port()}"), "keyed-client", in_config=True)  # moves a probe
    try:
        # both went through the broker, not ZeroMQ (which would move the probe just as well)
        assert "New client connected" in broker.log() and "as keyed-client-sub-" in broker.log()
        assert "Received PUBLISH from keyed-client-req-" in broker.log()
    finally:
        pair.stop()


def test_sections_naming_different_buses_are_one_line(tmp_path):
    (tmp_path / "in").mkdir()
    section = {"origin": f"{tmp_path}/in/{{name}}.dat", "request_port": free_port(), "topic": "/test/data"}
    ini = write_ini(tmp_path / "server.ini", {"a": {**section, "bus": "mqtt://127.0.0.1:1/a"},
                                              "b": {**section, "request_port": free_port(),
                                                    "bus": "mqtt://127.0.0.1:1/b"}})
    server = TrollmovesProcess(["server", ini], tmp_path / "server.log")
    assert server.proc.wait(30) == 2
    assert "different buses ([a], [b])" in server.log() and "Traceback" not in server.log()


@pytest.mark.parametrize("stop", ["terminate", "kill"])
def test_a_broker_restart_mid_stream_loses_nothing(restartable_pair, stop):
    pair, broker = restartable_pair
    bus = f"mqtt://127.0.0.1:{broker.port}/restart"  # as logged and labelled: no query
    first = {f"f{n}.dat": f"before {n}\n".encode() for n in range(20)}
    second = {f"f{n}.dat": f"during {n}\n".encode() for n in range(20, 40)}
    connected = lambda: metrics(pair.metrics_url).get(f'trollmoves_bus_connected{{bus="{bus}"}}')  # noqa: E731
    for name, content in first.items():
        write_file(pair.inbox, name, content)
    assert wait_until(lambda: all((pair.out / n).exists() for n in first), 30), pair.client.log()[-3000:]
    assert connected() == 1.0
    broker.stop() if stop == "terminate" else broker.kill()
    assert wait_until(lambda: connected() == 0.0, 30)
    for name, content in second.items():  # announced while the broker is down
        write_file(pair.inbox, name, content)
    assert wait_until(lambda: pair.server.log().count("announced") >= 41, 20)
    broker.start()
    everything = {**first, **second}
    assert wait_until(lambda: all((pair.out / n).exists() for n in everything), 60), pair.client.log()[-3000:]
    assert {n: (pair.out / n).read_bytes() for n in everything} == everything
    assert wait_until(lambda: connected() == 1.0, 30)
    assert metrics(pair.metrics_url)[f'trollmoves_bus_reconnects_total{{bus="{bus}"}}'] == 1.0
    # one line each for all of the client's connections to the broker
    log = pair.client.log()
    assert log.count("MQTT bus: lost the broker") == 1 and log.count("MQTT bus: connected to the broker") == 1, log


def test_an_untrusted_ca_stops_the_client_with_one_line(tmp_path, secure_broker):
    (tmp_path / "pw").write_text("irrelevant\n")
    ini = write_ini(tmp_path / "client.ini", {"test": {
        "providers": "127.0.0.1:1", "destination": f"{tmp_path}/out/", "topic": "/test/data",
        "publish_port": free_port(), "nameservers": "false", "bind_address": "127.0.0.1"}})
    bus = secure_broker.url(scheme="mqtts", user="client", password_file=str(tmp_path / "pw"))  # no ca_file
    client = TrollmovesProcess(["client", ini, "--bus", bus], tmp_path / "client.log")
    assert client.proc.wait(30) == 2
    log = client.log()
    assert "not trusted" in log and "ca_file" in log and "Traceback" not in log
    assert len([line for line in log.splitlines() if "not trusted" in line]) == 1


def test_allowed_clients_on_an_mqtt_bus_stops_the_server_with_one_line(tmp_path, broker):
    (tmp_path / "in").mkdir()
    ini = write_ini(tmp_path / "server.ini", {"srv": {
        "origin": f"{tmp_path}/in/{{name}}.dat", "request_port": free_port(), "request_address": "127.0.0.1",
        "topic": "/test/data", "allowed_clients": "127.0.0.1"}})
    server = TrollmovesProcess(["server", "-p", free_port(), "--bind", "127.0.0.1",
                                "--bus", broker.url(prefix=f"sec{free_port()}"), ini], tmp_path / "server.log")
    assert server.proc.wait(30) == 2
    log = server.log()
    assert "Traceback" not in log
    assert len([line for line in log.splitlines() if "allowed_clients" in line and "ACL" in line]) == 1, log


def test_curve_keys_on_an_mqtt_bus_stop_the_client_with_one_line(tmp_path, broker):
    from trollmoves_roles.bus.security import create_keypair

    _, secret = create_keypair(tmp_path / "keys", "client")
    server_key, _ = create_keypair(tmp_path / "keys", "server")
    ini = write_ini(tmp_path / "client.ini", {"test": {
        "providers": "127.0.0.1:1", "destination": f"{tmp_path}/out/", "topic": "/test/data",
        "publish_port": free_port(), "nameservers": "false", "bind_address": "127.0.0.1",
        "client_secret_key_file": str(secret), "server_public_key_file": str(server_key)}})
    client = TrollmovesProcess(["client", ini, "--bus", broker.url(prefix=f"sec{free_port()}")],
                               tmp_path / "client.log")
    assert client.proc.wait(30) == 2
    log = client.log()
    assert "Traceback" not in log
    assert len([line for line in log.splitlines() if "server_public_key_file" in line and "ACL" in line]) == 1, log


def test_publisher_keys_on_an_mqtt_bus_stop_the_mirror_with_one_line(tmp_path, broker):
    from support.mirror import mirror_section
    from trollmoves_roles.bus.security import create_keypair

    _, secret = create_keypair(tmp_path / "keys", "mirror")
    publisher_key, _ = create_keypair(tmp_path / "keys", "publisher")
    ini = write_ini(tmp_path / "mirror.ini", {"m": mirror_section(
        "127.0.0.1:9", free_port(), client_secret_key_file=str(secret), publisher_public_key_file=str(publisher_key))})
    mirror = TrollmovesProcess(["mirror", "-p", free_port(), "--bind", "127.0.0.1",
                                "--bus", broker.url(prefix=f"sec{free_port()}"), ini], tmp_path / "mirror.log")
    assert mirror.proc.wait(30) == 2
    log = mirror.log()
    assert "Traceback" not in log
    assert len([line for line in log.splitlines() if "publisher_public_key_file" in line and "ACL" in line]) == 1, log
