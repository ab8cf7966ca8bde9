"""Client INI parsing: upstream keys, defaults, per-provider topics, errors naming file/section/key."""

from __future__ import annotations

import logging

import pytest
from support.ini import write_ini
from trollmoves_roles.client.config import Provider, load_client_config

from trollmoves_core.exceptions import ConfigError


def load(tmp_path, sections):
    return load_client_config(write_ini(tmp_path / "client.ini", sections))


def test_defaults_match_upstream(tmp_path):
    chain = load(tmp_path, {"eumetcast": {"providers": "host1:9010 tcp://host2:9011", "destination": "/data/out/",
                                          "topic": "/1b/hrit"}})["eumetcast"]
    assert chain.providers == (Provider("tcp://host1:9010"), Provider("tcp://host2:9011"))
    assert (chain.publish_port, chain.nameservers, chain.bind_address) == (0, None, "*")
    assert (chain.req_timeout, chain.transfer_req_timeout, chain.request_attempts) == (1.0, 10.0, 3)
    assert chain.heartbeat and chain.heartbeat_alarm_scale == 0 and chain.processing_delay == 0
    assert chain.compression is None and chain.create_target_directory and chain.ftp_root == "/"
    assert chain.topics_for(chain.providers[0]) == ["/1b/hrit", "/heartbeat/move_it_server",
                                                    "/heartbeat/move_it_eumetcast"]


def test_default_section_is_inherited_and_values_typed(tmp_path):
    chains = load(tmp_path, {
        "DEFAULT": {"providers": "127.0.0.1:9010", "publish_port": 9021, "nameservers": "false",
                    "heartbeat_alarm_scale": "10", "processing_delay": "0.5"},
        "a": {"destination": "ftp://127.0.0.1/a/", "topic": "/a", "login": "u:p", "compression": "bzip",
              "backup_targets": "h1 h2", "max_requests_in_flight": "8", "delete": "True"},
        "b": {"destination": "/b/{platform_name}/", "topic": "/b", "nameservers": "ns1 ns2",
              "heartbeat": "False", "create_target_directory": "no"},
    })
    a, b = chains["a"], chains["b"]
    assert a.publish_port == b.publish_port == 9021
    assert a.nameservers is False and b.nameservers == ("ns1", "ns2")
    assert a.heartbeat_alarm_scale == 10.0 and a.processing_delay == 0.5
    assert a.login == "u:p" and a.compression == "bzip" and a.backup_targets == ("h1", "h2")
    assert a.max_requests_in_flight == 8 and a.delete is True
    assert b.topics_for(b.providers[0]) == ["/b"] and not b.create_target_directory


def test_per_provider_topic_is_kept(tmp_path):
    chain = load(tmp_path, {"c": {"providers": "h1:9010/aTopic h2:9010//other/data h3:9010", "destination": "/o/",
                                  "topic": "/main", "heartbeat": "false"}})["c"]
    assert [chain.topics_for(p) for p in chain.providers] == [["aTopic"], ["/other/data"], ["/main"]]


def test_section_without_topic_and_heartbeat_is_dropped_like_upstream(tmp_path, caplog):
    chains = load(tmp_path, {"kept": {"providers": "h:1", "destination": "/o/", "topic": "/t"},
                             "dropped": {"providers": "h:1", "destination": "/o/", "heartbeat": "false"}})
    assert list(chains) == ["kept"]
    assert "[dropped] has no topic" in caplog.text


def test_unknown_keys_are_warned_once_and_kept_for_replace_mda(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        chains = load(tmp_path, {"DEFAULT": {"sensor": "avhrr/3"},
                                 "a": {"providers": "h:1", "destination": "/o/", "topic": "/t"},
                                 "b": {"providers": "h:1", "destination": "/o/", "topic": "/t"}})
    assert chains["a"].metadata["sensor"] == "avhrr/3"
    warnings = [r.getMessage() for r in caplog.records if "'sensor'" in r.getMessage()]
    assert len(warnings) == 1 and "[a], [b]" in warnings[0] and "replace_mda" in warnings[0]


@pytest.mark.parametrize(("values", "key", "text"), [
    ({"destination": "/o/", "topic": "/t"}, "providers", "required key is missing"),
    ({"providers": "h:1", "topic": "/t"}, "destination", "required key is missing"),
    ({"providers": "nohost", "destination": "/o/", "topic": "/t"}, "providers", "host:port"),
    ({"providers": "h:99999", "destination": "/o/", "topic": "/t"}, "providers", "host:port"),
    ({"providers": "h:1", "destination": "/o/", "topic": "/t", "publish_port": "x"}, "publish_port", "integer"),
    ({"providers": "h:1", "destination": "/o/", "topic": "/t", "req_timeout": "0"}, "req_timeout", "positive"),
    ({"providers": "h:1", "destination": "/o/", "topic": "/t", "compression": "rar"}, "compression", "rar"),
    ({"providers": "h:1", "destination": "bogus://h/o/", "topic": "/t"}, "destination", "bogus"),
    ({"providers": "h:1", "destination": "/o/{unclosed/", "topic": "/t"}, "destination", "invalid destination"),
    ({"providers": "h:1", "destination": "/o/", "topic": "/t", "heartbeat": "maybe"}, "heartbeat", "true/false"),
    ({"providers": "h:1", "destination": "/o/", "topic": "/t", "max_requests_in_flight": "0"},
     "max_requests_in_flight", ">= 1"),
])
def test_bad_values_name_file_section_and_key(tmp_path, values, key, text):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, {"chain1": values})
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'client.ini'}: [chain1] {key}: ") and text in message
    assert "\n" not in message


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_client_config(tmp_path / "nope.ini")
    (tmp_path / "empty.ini").write_text("")
    with pytest.raises(ConfigError, match="no client chain"):
        load_client_config(tmp_path / "empty.ini")
