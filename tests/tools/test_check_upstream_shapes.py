"""``trollmoves check`` passes configs written the way upstream trollmoves 0.19's own examples
write them (their keys, their placeholders, their missing directories), for every role.

The configs are ours, written for this test: the keys and layouts are upstream's, the values
made up. Whatever check finds in them may only be a warning.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trollmoves_core.cli import main

SERVER = """# a chain per section, as upstream's server example
[hrit-0deg]
origin = /nonexistent-received/H-000-{platform_name:_<12s}-{channel:_<9s}-{nominal_time:%Y%m%d%H%M}-{compressed:_<2s}
request_port = 19301
publisher_port = 9010
info = sensor=seviri;variant=0DEG
topic = /1b/hrit-segment/0deg
delete = False

[pps-ears]
origin = /nonexistent-aapp-out/hrpt_{platform_name}_{start_time:%Y%m%d_%H%M}_{orbit_number:05d}.l1b
origin_inotify_base_dir_skip_levels=-2
topic=/check/pps-ears
info=antenna=ears
request_port=19302
request_address=127.0.0.1
station=proc3
connection_parameters__ssh_key_filename = /nonexistent-home/.ssh/id_rsa
"""

CLIENT = """[hrit-0deg-ftp]
providers = sat1:9010 sat2:9010
destination = ftp://127.0.0.1/tmp/foo
login = user:pass
topic = /1b/hrit-segment/0deg
publish_port = 0
heartbeat_alarm_scale = 10
nameservers = false

[hrit-0deg-scp]
providers = sat1:9010
destination = scp://user@primary/tmp/foo
login = user
publish_port = 0
topic = /1b/hrit-segment/0deg
backup_targets = backup1 backup2
processing_delay = 0.02
"""

MIRROR = """[hrit-0deg-mirror]
providers = sat1:9010
destination = ftp://127.0.0.1/tmp/mirror
login = user:pass
client_topic = /1b/hrit-segment/0deg
publish_port = 0
origin = /tmp/H-000-{series:_<6s}-{platform_name:_<12s}-{nominal_time:%Y%m%d%H%M}-{compressed:_<2s}
info = sensor=seviri;variant=0DEG
topic = /1b/hrit-segment/0deg
request_port = 19311
request_address = 127.0.0.1
delete = False
"""

DISPATCHER = """target1:
  host: ftp://ftp.example.com
  connection_parameters:
    connection_uptime: 60
  filepattern: '{platform_name}_{start_time}.{format}'
  directory: /input_data/{sensor}
  aliases:
    product:
      natural_color: dnc
  dispatch_configs:
    - topics:
        - /level2/viirs
      conditions:
        - product: [green_snow, true_color]
          sensor: viirs
          except:
            platform_name: NOAA-15
    - topics: [/level3/cloudtype]
      directory: /input/cloud_products
      conditions:
        - area: omerc_bb
          daylight: '<30'
          coverage: '>50'

s3-target:
  host: s3://a-bucket/
  connection_parameters:
    client_kwargs:
      endpoint_url: 'https://objects.example.com:9000'
      verify: false
    secret: "a-secret"
    key: "an-access-key"
    use_ssl: true
  aliases:
    platform_name:
      Suomi-NPP: npp
  dispatch_configs:
    - topics: [/atms/sdr/1]
      conditions:
        - sensor: [atms, [atms]]
          format: SDR
      directory: /upload/sdr

local-test:
  host: file://localhost
  connection_parameters:
    connection_uptime: 60
  filepattern: "{filename}.txt"
  directory: "/tmp/dispatcher_target_directory/"
  nameserver: localhost
  dispatch_configs:
    - topics:
        - /foo
"""

DOWNLOADER = """---
logging:
  log_rotation_days: 1
  log_rotation_backup: 30
  logging_mode: DEBUG

subscribe-topic:
  - /objects
publish-topic: /downloaded
services:
  - s3stalker
bucket: '<name of the bucket>'
download_destination: '<where the downloaded files go>'
s3_kwargs:
  anon: False
  profile: a-profile
  client_kwargs:
    endpoint_url: <url of the object store>
"""


@pytest.mark.parametrize("name, text, role", [
    ("server.ini", SERVER, "server"), ("client.ini", CLIENT, "client"), ("mirror.ini", MIRROR, "mirror"),
    ("dispatch.yaml", DISPATCHER, "dispatcher"), ("s3downloader-config.yaml", DOWNLOADER, "downloader"),
])
def test_configs_shaped_like_upstreams_examples_pass(tmp_path: Path, monkeypatch, capsys, name: str, text: str,
                                                     role: str) -> None:
    monkeypatch.chdir(tmp_path)  # the downloader's placeholder destination is a relative path
    path = tmp_path / name
    path.write_text(text)
    assert main(["check", str(path)]) == 0
    *found, summary = capsys.readouterr().out.splitlines()
    assert summary.startswith(f"{path}: OK") and f"checked as {role}" in summary, summary
    assert all(": warning: " in line for line in found), found


def test_upstreams_missing_directories_are_warnings(tmp_path: Path, capsys) -> None:
    path = tmp_path / "server.ini"
    path.write_text(SERVER)
    assert main(["check", "-q", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: [hrit-0deg] origin: warning: directory /nonexistent-received does not exist yet; the chain "
        "starts watching when it appears",
        f"{path}: [pps-ears] origin: warning: directory /nonexistent-aapp-out does not exist yet; the chain "
        "starts watching when it appears"]


def test_a_section_twice_is_one_line_naming_it(tmp_path: Path, capsys) -> None:
    """Upstream's client example has a section twice; upstream's ConfigParser refuses it too."""
    path = tmp_path / "client.ini"
    path.write_text(CLIENT + CLIENT.split("\n\n")[1])
    assert main(["check", str(path)]) == 2
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: line 18: section [hrit-0deg-scp] appears twice (upstream refuses this too): rename or merge one"]
