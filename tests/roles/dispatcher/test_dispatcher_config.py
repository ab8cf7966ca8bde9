"""Reading upstream dispatch YAML: accepted forms, warnings for unknown keys, errors naming the fault."""

from __future__ import annotations

import datetime as dt
import logging
import textwrap

import pytest
from trollmoves_roles.dispatcher.conditions import parse_conditions
from trollmoves_roles.dispatcher.config import load_config
from trollmoves_roles.dispatcher.engine import compose_destination

from trollmoves_core.exceptions import ConfigError
from trollmoves_core.plugins import default_host

UPSTREAM_STYLE = """\
target1:
  host: ftp://user:pass@ftp.target1.example:2121
  connection_parameters:
    connection_uptime: 20
  filepattern: '{platform_name}_{start_time:%Y%m%d%H%M}.{format}'
  directory: /input_data/{sensor}
  publish_topic: /dispatch/{sensor}
  dispatch_configs:
    - topics:
        - /level2/viirs
        - /level2/avhrr
      conditions:
        - product: [green_snow, true_color]
          sensor: viirs
        - product: [green_snow, overview]
          sensor: avhrr
          except:
            platform_name: NOAA-15
    - topics:
        - /level3/cloudtype
      directory: /input/cloud_products
      conditions:
        - area: omerc_bb
          daylight: '<30'
          coverage: '>50'
  aliases:
    product:
      green_snow: gs
      true_color: tc
target2:
  host: ""
  directory: {out}
  dispatch_configs:
    - topics: [/level2/]
posttroll_subscriber:
  subscribe_addresses: [tcp://127.0.0.1:40000]
  nameserver: false
"""


def write(tmp_path, text: str):
    path = tmp_path / "dispatch.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_upstream_example_loads(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    config = load_config(write(tmp_path, UPSTREAM_STYLE.replace("{out}", str(tmp_path / "out"))), default_host())
    assert [t.name for t in config.targets] == ["target1", "target2"]
    assert config.subscriber.addresses == ("tcp://127.0.0.1:40000",) and config.subscriber.nameservers == ()
    assert config.topics == ["/level2/viirs", "/level2/avhrr", "/level3/cloudtype", "/level2/"]
    first, second = config.targets[0].items
    assert second.directory == "/input/cloud_products" and second.filepattern == first.filepattern
    assert not caplog.records, "an upstream config must load without warnings"


def test_destination_composition_with_aliases(tmp_path):
    config = load_config(write(tmp_path, UPSTREAM_STYLE.replace("{out}", str(tmp_path / "out"))), default_host())
    target = config.targets[0]
    fields = {"platform_name": "NOAA-20", "start_time": dt.datetime(2024, 5, 6, 7, 8), "format": "tif",
              "sensor": "viirs", "product": "green_snow"}
    for alias in target.aliases:
        alias.apply(fields)
    assert fields["product"] == "gs"
    destination = compose_destination(target.items[0], fields, "/data/source.tif")
    assert destination == "ftp://user:pass@ftp.target1.example:2121/input_data/viirs/NOAA-20_202405060708.tif"


def test_alias_lists_with_alias_name_add_a_new_key(tmp_path):
    path = write(tmp_path, f"""\
        t:
          directory: {tmp_path}/{{short}}
          aliases:
            platform_name:
              - {{NOAA-19: n19, _alias_name: short}}
              - {{NOAA-19: noaa19}}
          dispatch_configs: [{{topics: [/a]}}]
        posttroll_subscriber: {{subscribe_addresses: [tcp://127.0.0.1:1], nameserver: false}}
        """)
    target = load_config(path, default_host()).targets[0]
    fields = {"platform_name": "NOAA-19"}
    for alias in target.aliases:
        alias.apply(fields)
    assert fields == {"platform_name": "noaa19", "short": "n19"}
    assert compose_destination(target.items[0], fields, "/x/f.nc") == f"{tmp_path}/n19/f.nc"


@pytest.mark.parametrize(("conditions", "metadata", "expected"), [
    ([{"sensor": "viirs"}], {"sensor": "viirs"}, True),
    ([{"sensor": "viirs"}], {"sensor": "avhrr"}, False),
    ([{"sensor": "viirs"}], {}, False),
    ([{"product": ["a", "b"], "sensor": "x"}], {"product": "b", "sensor": "x"}, True),
    ([{"product": ["a", "b"], "sensor": "x"}], {"product": "b", "sensor": "y"}, False),
    ([{"coverage": ">50"}], {"coverage": 50.5}, True),
    ([{"coverage": ">50"}], {"coverage": 50}, False),
    ([{"coverage": ">=50"}], {"coverage": "50"}, True),
    ([{"daylight": "<30"}], {"daylight": "lots"}, False),
    ([{"orbit": "!=0"}], {"orbit": 12}, True),
    ([{"orbit": 12}], {"orbit": "12"}, True),
    ([{"s": "x", "except": {"p": "N15"}}], {"s": "x", "p": "N15"}, False),
    ([{"s": "x", "except": {"p": "N15"}}], {"s": "x", "p": "N19"}, True),
    ([{"s": "x", "except": {"p": "N15"}}], {"s": "x"}, True),
    ([{"s": "x"}, {"s": "y"}], {"s": "y"}, True),
])
def test_conditions(conditions, metadata, expected):
    assert parse_conditions(conditions).matches(metadata) is expected


@pytest.mark.parametrize(("text", "message"), [
    ("t: {directory: /x}\n", "[t] dispatch_configs: required"),
    ("t: {dispatch_configs: [{topics: [/a]}]}\n", "[t] dispatch_configs[0].directory: required for a local target"),
    ("t: {directory: /x, dispatch_configs: [{conditions: [{a: 1}]}]}\n", "dispatch_configs[0].topics: required"),
    ("t: {host: gopher://h, directory: /x, dispatch_configs: [{topics: [/a]}]}\n", "[t] host: no mover for 'gopher://'"),
    ("t: {host: h.example, directory: /x, dispatch_configs: [{topics: [/a]}]}\n", "[t] host: expected a URL"),
    ("t: {directory: '/x/{oops', dispatch_configs: [{topics: [/a]}]}\n", "directory: invalid pattern"),
    ("t: {directory: /x, dispatch_configs: [{topics: [/a], conditions: [{c: '>big'}]}]}\n",
     "conditions: comparison '>big' needs a number"),
    ("t: {directory: /x, publish_uri: full, dispatch_configs: [{topics: [/a]}]}\n", "publish_uri: expected one of"),
    ("t: [1, 2]\n", "[t] expected a mapping"),
    ("[1, 2]\n", "expected a mapping of targets"),
    ("t: {directory: /x\n", "invalid YAML"),
    ("posttroll_subscriber: {nameserver: false}\nt: {directory: /x, dispatch_configs: [{topics: [/a]}]}\n",
     "[posttroll_subscriber] nameserver is false and no subscribe_addresses"),
    ("posttroll_subscriber: {subscribe_addresses: [tcp://h:port]}\n"
     "t: {directory: /x, dispatch_configs: [{topics: [/a]}]}\n",
     "[posttroll_subscriber] subscribe_addresses: expected host:port or tcp://host:port, got 'tcp://h:port'"),
])
def test_bad_configs_name_file_target_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, default_host())
    assert message in str(info.value)
    assert str(info.value).startswith(str(path))


def test_unknown_keys_are_warned_about_with_file_and_key(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    path = write(tmp_path, f"""\
        t:
          directory: {tmp_path}
          compression: bzip2
          dispatch_configs: [{{topics: [/a], delete: true}}]
        posttroll_subscriber: {{subscribe_addresses: [tcp://127.0.0.1:1], nameserver: false, timeout: 3}}
        """)
    load_config(path, default_host())
    lines = [r.getMessage() for r in caplog.records]
    assert f"{path}: [t] compression: unknown key, ignored" in lines
    assert f"{path}: [t] dispatch_configs[0].delete: unknown key, ignored" in lines
    assert f"{path}: [posttroll_subscriber] timeout: unknown key, ignored" in lines


def test_target_defaults_are_inherited(tmp_path):
    path = write(tmp_path, f"""\
        target_defaults:
          directory: {tmp_path}/{{sensor}}
          connection_parameters: {{retries: 5}}
          publish_topic: /done
        a: {{dispatch_configs: [{{topics: [/a]}}], connection_parameters: {{retry_delay: 2}}}}
        b: {{directory: /elsewhere, dispatch_configs: [{{topics: [/b]}}]}}
        posttroll_subscriber: {{subscribe_addresses: [tcp://127.0.0.1:1], nameserver: false}}
        """)
    a, b = load_config(path, default_host()).targets
    assert a.items[0].directory == f"{tmp_path}/{{sensor}}" and a.publish_topic == "/done"
    assert a.connection_parameters == {"retries": 5, "retry_delay": 2}
    assert b.items[0].directory == "/elsewhere"


def test_host_path_is_reported_not_silently_dropped(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    path = write(tmp_path, """\
        t: {host: 'ftp://u:pw@h.example/prefix', directory: /in, dispatch_configs: [{topics: [/a]}]}
        posttroll_subscriber: {subscribe_addresses: [tcp://127.0.0.1:1], nameserver: false}
        """)
    target = load_config(path, default_host()).targets[0]
    assert compose_destination(target.items[0], {}, "/d/f.nc") == "ftp://u:pw@h.example/in/f.nc"
    (line,) = [r.getMessage() for r in caplog.records]
    assert "[t] host: the path '/prefix'" in line and "pw" not in line


@pytest.mark.parametrize("text, where", [
    ("t:\n  directory: {out}\n  dispatch_configs:\n    - topics: [/a]\n  conditions:\n    - {{sensor: avhrr}}\n",
     "[t] conditions"),
    ("target_defaults:\n  conditions: [{{sensor: avhrr}}]\n"
     "t: {{directory: {out}, dispatch_configs: [{{topics: [/a]}}]}}\n", "[target_defaults] conditions"),
])
def test_conditions_outside_an_item_are_refused(tmp_path, text, where):
    path = tmp_path / "dispatch.yaml"
    path.write_text(text.format(out=tmp_path))
    with pytest.raises(ConfigError) as info:
        load_config(path, default_host())
    assert str(info.value).startswith(f"{path}: {where}: belongs in a dispatch_configs item")


def test_subscriber_keys_in_a_target_are_accepted_as_upstream_does(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    path = tmp_path / "dispatch.yaml"
    path.write_text(f"t:\n  directory: {tmp_path}\n  nameserver: localhost\n  dispatch_configs: [{{topics: [/a]}}]\n")
    assert [t.name for t in load_config(path, default_host()).targets] == ["t"]
    assert caplog.records == []
