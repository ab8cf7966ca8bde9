"""Passwords, TLS and the ACL on a real Mosquitto: failures are one clear line, secrets never logged."""

from __future__ import annotations

import logging
import uuid

import pytest
from posttroll.message import Message
from trollmoves_mqtt.testing import PASSWORD
from trollmoves_mqtt.transport import MqttTransport
from trollmoves_roles.testing import receive

from trollmoves_core.exceptions import ConfigError


def _pw(tmp_path, text: str) -> str:
    path = tmp_path / f"pw-{uuid.uuid4().hex[:6]}"
    path.write_text(text + "\n")
    return str(path)


def test_wrong_password_is_one_clear_line(secure_broker, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    transport = MqttTransport.for_bus(secure_broker.url(user="client", password_file=_pw(tmp_path, "wrong-pw-42")))
    with pytest.raises(ConfigError) as caught:
        transport.publisher("unused", name="t")
    text = str(caught.value)
    assert "refused" in text and "'client'" in text and "password_file" in text and "\n" not in text
    assert "wrong-pw-42" not in text and "wrong-pw-42" not in caplog.text


def test_unknown_user_is_refused(secure_broker, tmp_path):
    transport = MqttTransport.for_bus(secure_broker.url(user="mallory", password_file=_pw(tmp_path, PASSWORD)))
    with pytest.raises(ConfigError, match="refused"):
        transport.subscriber([], ["/x"])


def test_anonymous_is_refused_where_users_are_required(secure_broker):
    with pytest.raises(ConfigError, match="anonymous"):
        MqttTransport.for_bus(secure_broker.url()).publisher("unused", name="t")


def test_untrusted_ca_is_one_clear_line(secure_broker, tmp_path):
    # no ca_file: the system CAs do not know the test CA
    transport = MqttTransport.for_bus(secure_broker.url(scheme="mqtts", user="client",
                                                        password_file=_pw(tmp_path, PASSWORD)))
    with pytest.raises(ConfigError) as caught:
        transport.publisher("unused", name="t")
    assert "not trusted" in str(caught.value) and "ca_file" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_verify_false_connects_without_the_ca(secure_broker, tmp_path):
    transport = MqttTransport.for_bus(secure_broker.url(scheme="mqtts", user="client", verify="false",
                                                        password_file=_pw(tmp_path, PASSWORD)))
    transport.publisher("unused", name="t").stop()


def test_plain_client_on_the_tls_port_is_not_a_traceback(secure_broker, tmp_path):
    url = secure_broker.url(scheme="mqtts", user="client", password_file=_pw(tmp_path, PASSWORD),
                            ca_file=str(secure_broker.ca_file)).replace("mqtts://", "mqtt://")
    transport = MqttTransport.for_bus(url + "&connect_timeout=1")
    publisher = transport.publisher("unused", name="t")  # no CONNACK ever: logged, retried in the background
    publisher.stop()


def test_the_acl_denies_a_client_publishing_announcements(secure_broker, tmp_path):
    ca = str(secure_broker.ca_file)
    server = MqttTransport.for_bus(secure_broker.url(scheme="mqtts", user="server", ca_file=ca,
                                                     password_file=_pw(tmp_path, PASSWORD), client_id="acl-server"))
    client = MqttTransport.for_bus(secure_broker.url(scheme="mqtts", user="client", ca_file=ca,
                                                     password_file=_pw(tmp_path, PASSWORD), client_id="acl-client"))
    topic = f"/acl/{uuid.uuid4().hex[:6]}"
    listener = server.subscriber([], [topic])
    honest = server.publisher("unused", name="server")
    forger = client.publisher("unused", name="forger")
    try:
        from trollmoves_roles.testing import settle
        settle(honest, listener, topic)
        forger.send(Message(f"{topic}/file", "file", {"by": "client"}))
        honest.send(Message(f"{topic}/file", "file", {"by": "server"}))
        got = receive(listener, lambda m: m.type == "file")
        assert got.data == {"by": "server"}
        assert listener.recv(0.5) is None
    finally:
        for thing in (forger, honest):
            thing.stop()
        listener.close()
    assert "denied PUBLISH" in secure_broker.log() or "Denied PUBLISH" in secure_broker.log()
