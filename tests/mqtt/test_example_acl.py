"""examples/configs/mqtt/acl on a real Mosquitto: servers announce and answer, clients read and
request, and a client cannot publish an announcement."""

from __future__ import annotations

import logging
import queue
from pathlib import Path

import pytest
from posttroll.message import Message
from trollmoves_mqtt.testing import PASSWORD, Mosquitto
from trollmoves_mqtt.transport import MqttTransport
from trollmoves_roles.testing import WAIT, in_loop, receive_until, running_loop, settle

EXAMPLE_ACL = Path(__file__).parents[2] / "examples" / "configs" / "mqtt" / "acl"


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory):
    directory = tmp_path_factory.mktemp("acl-broker")
    with Mosquitto(directory, users={"server": PASSWORD, "client": PASSWORD}, acl=EXAMPLE_ACL.read_text()) as broker:
        (directory / "pw").write_text(PASSWORD + "\n")
        yield broker


def _transport(broker, user):
    return MqttTransport.for_bus(broker.url(user=user, password_file=str(broker.directory / "pw"),
                                            client_id=f"acl-{user}"))


def test_a_client_cannot_publish_an_announcement(acl_broker, caplog):
    caplog.set_level(logging.INFO)
    server, client = _transport(acl_broker, "server"), _transport(acl_broker, "client")
    announcer = server.publisher("server", name="server")
    forger = client.publisher("server", name="forger")  # the address the listener names: only the ACL stops it
    listener = client.subscriber(["server"], ["/level0/hrit"])
    try:
        settle(announcer, listener, "/level0/hrit")
        forger.send(Message("/level0/hrit", "file", {"uid": "forged"}))
        announcer.send(Message("/level0/hrit", "file", {"uid": "real"}))
        announcer.send(Message("/level0/hrit/end", "end"))
        got = receive_until(listener, "end")
    finally:
        for closing in (announcer, forger, listener):
            getattr(closing, "stop", getattr(closing, "close", None))()
    assert [m.data["uid"] for m in got if m.type == "file"] == ["real"]
    assert "Denied PUBLISH" in acl_broker.log()
    assert "refused a message" in caplog.text and "user client" in caplog.text


def test_a_client_may_request_and_read_its_own_replies(acl_broker):
    server, client = _transport(acl_broker, "server"), _transport(acl_broker, "client")
    inbox = server.request_inbox("ingest1.example.org:9092")
    try:
        with running_loop("server") as server_loop, running_loop("client") as loop:
            def answer() -> None:
                while (incoming := inbox.receive()) is not None:
                    inbox.reply(incoming.token, Message("/r", "ack", incoming.request.data))
            in_loop(server_loop, lambda: server_loop.register(inbox.pollable, answer))
            requester = in_loop(loop, lambda: client.requester(loop))
            replies: queue.Queue = queue.Queue()
            in_loop(loop, lambda: requester.request("ingest1.example.org:9092", Message("/r", "push", {"n": 5}),
                                                    timeout=5.0, attempts=2, callback=lambda r, e: replies.put((r, e))))
            reply, error = replies.get(timeout=WAIT)
            in_loop(loop, requester.close)
            in_loop(server_loop, lambda: server_loop.unregister(inbox.pollable))
    finally:
        inbox.close()
    assert error is None and reply.data == {"n": 5}


def test_the_example_broker_config_runs(tmp_path):
    """examples/configs/mqtt/mosquitto.conf with its paths pointed into tmp_path and its port free."""
    import os
    import subprocess

    from support.bus import wait_until
    from trollmoves_mqtt.testing import free_port, make_ca

    ca, cert, key = make_ca(tmp_path / "certs")
    passwords = tmp_path / "passwd"
    passwords.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "client", PASSWORD], check=True)
    (tmp_path / "acl").write_text(EXAMPLE_ACL.read_text())
    port = free_port()
    text = (EXAMPLE_ACL.with_name("mosquitto.conf").read_text()
            .replace("listener 8883", f"listener {port} 127.0.0.1")
            .replace("/etc/mosquitto/certs/ca.pem", str(ca)).replace("/etc/mosquitto/certs/broker.pem", str(cert))
            .replace("/etc/mosquitto/certs/broker.key", str(key))
            .replace("/etc/mosquitto/trollmoves.passwd", str(passwords))
            .replace("/etc/mosquitto/trollmoves.acl", str(tmp_path / "acl"))
            .replace("/var/lib/mosquitto/", f"{tmp_path}/").replace("log_dest syslog", f"log_dest file {tmp_path}/log"))
    config = tmp_path / "mosquitto.conf"
    config.write_text(("user root\n" if os.geteuid() == 0 else "") + text)
    proc = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        (tmp_path / "pw").write_text(PASSWORD + "\n")
        bus = f"mqtts://client@127.0.0.1:{port}/trollmoves?password_file={tmp_path / 'pw'}&ca_file={ca}"
        assert wait_until(lambda: proc.poll() is not None or _listening(port), 10), "broker never listened"
        assert proc.poll() is None, proc.stderr.read()
        MqttTransport.for_bus(bus).subscriber(["server"], ["/level0/hrit"]).close()
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stderr.close()


def _listening(port: int) -> bool:
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False
