"""The mirror INI (upstream ``move_it_mirror.py`` format) read into section configs."""

from __future__ import annotations

import logging
import tempfile

import pytest
from support.ini import write_ini
from trollmoves_roles.client.config import Provider
from trollmoves_roles.mirror.config import load_mirror_config

from trollmoves_core.exceptions import ConfigError

UPSTREAM_STYLE = """\
# laid out as upstream's example: client part, then server part
[hrit_ftp]
providers = 127.0.0.1:9010 127.0.0.2:9011/other/topic
login = user:pass
destination = ftp:///tmp/incoming/
client_topic = /1b/hrit-segment/0deg
publish_port = 0

origin = /tmp/incoming/H-000-{series:_<6s}-{nominal_time:%Y%m%d%H%M}-{compressed:_<2s}
request_address = 192.0.2.10
request_port = 9338
info = sensor=seviri;sublon=0
topic = /1b/hrit-segment/0deg
# compression = xrit

[plain]
providers = localhost:9011
destination = file:///tmp/mirror_temporary_directory/
client_topic = /foo
publish_port = 9012
origin = /tmp/mirror_temporary_directory/{filename}.txt
request_address = localhost
request_port = 9013
topic = /foo
delete = true
"""


def test_upstream_layout_reads_unchanged(tmp_path):
    path = tmp_path / "mirror.ini"
    path.write_text(UPSTREAM_STYLE)
    configs = load_mirror_config(path)
    assert list(configs) == ["hrit_ftp", "plain"]
    hrit = configs["hrit_ftp"]
    assert hrit.providers == (Provider("tcp://127.0.0.1:9010"), Provider("tcp://127.0.0.2:9011", "other/topic"))
    assert hrit.topics_for(hrit.providers[0])[0] == "/1b/hrit-segment/0deg"
    assert hrit.topics_for(hrit.providers[1])[0] == "other/topic"
    assert "/heartbeat/move_it_server" in hrit.topics_for(hrit.providers[0])
    assert hrit.client.login == "user:pass"
    assert hrit.topic == "/1b/hrit-segment/0deg"
    assert (hrit.request_port, hrit.request_address) == (9338, "192.0.2.10")
    assert hrit.info == {"sensor": "seviri", "sublon": "0"}
    assert hrit.staging_destination == "ftp:///tmp/incoming/"
    assert hrit.serves("/data/in/H-000-MSG4__-201901011200-__")
    assert not hrit.serves("/data/in/H-000-MSG4__-201901011200-C_.bz2")
    plain = configs["plain"]
    assert plain.staging_destination == "file:///tmp/mirror_temporary_directory/"
    assert plain.serves("/in/a.txt") and not plain.serves("/in/a.dat")
    assert (plain.remove_delay, plain.delay, plain.station) == (30.0, 0.0, "unknown")


def test_defaults_client_topic_is_topic_staging_in_working_directory(tmp_path):
    path = write_ini(tmp_path / "m.ini", {"m": {"providers": "127.0.0.1:9010", "topic": "/t", "request_port": 9100}})
    config = load_mirror_config(path)["m"]
    assert config.client.topic == "/t"
    assert config.staging_destination == tempfile.gettempdir() + "/"
    assert config.destination is None and config.origin is None and config.serves("/any/thing")
    assert config.client.transfer_req_timeout == 10.0 and config.client.request_attempts == 3


def test_working_directory_delay_and_default_section(tmp_path):
    path = write_ini(tmp_path / "m.ini", {
        "DEFAULT": {"providers": "127.0.0.1:9010", "working_directory": tmp_path, "remove_delay": 0},
        "a": {"topic": "/a", "request_port": 9100, "delay": 2.5},
        "b": {"topic": "/b", "request_port": 9101, "station": "dmz"}})
    configs = load_mirror_config(path)
    assert configs["a"].staging_destination == f"{tmp_path}/" and configs["a"].delay == 2.5
    assert configs["b"].station == "dmz" and configs["b"].remove_delay == 0.0


def test_same_request_port_twice_is_an_error(tmp_path):
    path = write_ini(tmp_path / "m.ini", {"a": {"providers": "h:1", "topic": "/a", "request_port": 9100},
                                          "b": {"providers": "h:1", "topic": "/b", "request_port": 9100}})
    with pytest.raises(ConfigError, match=r"\[b\] request_port: port 9100 is already used by \[a\]"):
        load_mirror_config(path)


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "m.ini"
    path.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="no mirror section"):
        load_mirror_config(path)


def test_unknown_and_unused_keys_logged(tmp_path, caplog):
    path = write_ini(tmp_path / "m.ini", {"m": {"providers": "h:1", "topic": "/a", "request_port": 9100,
                                                "destinaton": "/typo/", "delete": "true"}})
    with caplog.at_level(logging.DEBUG, logger="trollmoves_roles.mirror.config"):
        load_mirror_config(path)
    messages = [r.getMessage() for r in caplog.records]
    assert any("destinaton: unknown key" in m and r.levelno == logging.WARNING
               for m, r in zip(messages, caplog.records, strict=True))
    assert any("delete: not used by the mirror" in m for m in messages)


def test_allowed_destinations_read_as_a_server_reads_it(tmp_path, caplog):
    path = write_ini(tmp_path / "m.ini", {"m": {"providers": "h:1", "topic": "/a", "request_port": 9100,
                                                "allowed_destinations": "/data/out/** ftp://h/in/*"}})
    with caplog.at_level(logging.WARNING, logger="trollmoves_roles.mirror.config"):
        config = load_mirror_config(path)["m"]
    assert config.allowed_destinations == ("/data/out/**", "ftp://h/in/*")
    assert not any("allowed_destinations" in r.getMessage() for r in caplog.records)
    bad = write_ini(tmp_path / "bad.ini", {"m": {"providers": "h:1", "topic": "/a", "request_port": 9100,
                                                 "allowed_destinations": "re:(unclosed"}})
    with pytest.raises(ConfigError, match=r"\[m\] allowed_destinations"):
        load_mirror_config(bad)
