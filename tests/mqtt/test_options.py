"""Bus addresses and the topic mapping."""

from __future__ import annotations

import pytest
from trollmoves_mqtt.options import parse_bus_address
from trollmoves_mqtt.topics import filters, is_reply_topic, matches, publish_topic, request_topic, topic_filter

from trollmoves_core.exceptions import ConfigError


def test_defaults():
    bus = parse_bus_address("mqtt://broker")
    assert (bus.host, bus.port, bus.prefix, bus.tls, bus.session_expiry, bus.group) == \
        ("broker", 1883, "trollmoves", False, 3600, None)
    assert parse_bus_address("mqtts://broker").port == 8883


def test_everything(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("very-secret\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    bus = parse_bus_address(f"mqtts://alice@broker:9883/eu/sat?password_file={secret}&ca_file={ca}"
                            "&group=ingest&session_expiry=7200&client_id=host-a")
    assert (bus.username, bus.password, bus.prefix, bus.group, bus.session_expiry, bus.client_id) == \
        ("alice", "very-secret", "eu/sat", "ingest", 7200, "host-a")
    assert "very-secret" not in str(bus) and "very-secret" not in repr(bus)
    assert str(bus) == "mqtts://alice@broker:9883/eu/sat"


@pytest.mark.parametrize(("address", "complaint"), [
    ("mqtt://alice:pw@broker", "password_file"),
    ("mqtt:///prefix", "no broker host"),
    ("mqtt://broker/a/#", "may not contain"),
    ("mqtt://broker?colour=blue", "unknown parameter 'colour'"),
    ("mqtt://broker?password_file=/nonexistent/pw", "cannot read password_file"),
    ("mqtt://broker?session_expiry=soon", "session_expiry must be a number"),
    ("mqtt://broker?verify=maybe", "verify must be true or false"),
    ("mqtt://broker?group=a/b", "group"),
    ("mqtt://broker?client_id=a/b", "client_id"),
    ("mqtt://broker?client_id=a%2Bb", "client_id"),
    ("mqtts://broker?ca_file=/nonexistent.pem", "ca_file"),
    ("mqtt://broker:99999", "bad MQTT bus address"),
])
def test_bad_addresses_are_one_clear_line(address, complaint):
    with pytest.raises(ConfigError) as caught:
        parse_bus_address(address)
    assert complaint in str(caught.value)
    assert "\n" not in str(caught.value)
    assert ":pw@" not in str(caught.value)


def test_subjects_map_under_the_prefix():
    assert publish_topic("p", "/a/b/c") == "p/a/b/c"
    assert publish_topic("p", "a/b") == "p/a/b"
    with pytest.raises(ValueError):
        publish_topic("p", "/a/+/b")


@pytest.mark.parametrize(("topic", "mqtt_filter"), [
    ("/a/b", "p/a/#"), ("/a/b/", "p/a/b/#"), ("/", "p/#"), ("", "p/#"), ("/a", "p/#"),
    ("a/b/c", "p/a/b/#"), ("pytroll://a/b", "p/a/#"),
])
def test_posttroll_prefixes_map_to_level_filters(topic, mqtt_filter):
    assert topic_filter("p", topic) == mqtt_filter


def test_filters_are_shared_by_a_group():
    assert filters("p", ["/a/b", "/a/c"], "g") == ["$share/g/p/a/#"]


@pytest.mark.parametrize(("subject", "expected"), [
    ("/a/b", True), ("/a/b/c", True), ("/a/bc", True), ("/a/x", False), ("/b", False)])
def test_matching_is_posttrolls_string_prefix(subject, expected):
    assert matches(subject, ["/a/b"]) is expected


def test_request_topics_name_the_server():
    assert request_topic("p", "tcp://10.0.0.1:9011") == request_topic("p", "10.0.0.1:9011") == \
        "p/request/10.0.0.1:9011"


@pytest.mark.parametrize(("topic", "expected"), [
    ("p/reply/host-req-1a2b", True), ("p/reply/", False), ("p/reply", False), ("p/reply/a/b", False),
    ("p/reply/+", False), ("p/reply/#", False), ("p/reply/a\0b", False), ("p/sat/file", False),
    ("q/reply/x", False), ("p/replyx", False)])
def test_inboxes_reply_only_one_level_under_the_reply_level(topic, expected):
    assert is_reply_topic("p/reply/", topic) is expected
