"""Bandwidth limits of a dispatcher's targets: a limited target still delivers, its transfers and the
host's take from their buckets, a bad limit is a config error naming the key."""

from __future__ import annotations

import os

import pytest
import yaml
from trollmoves_roles.dispatcher.config import load_config

from trollmoves_core.bwlimit import Schedule
from trollmoves_core.exceptions import ConfigError
from trollmoves_core.plugins import default_host

TOPIC = "/level2/avhrr"


def target(out, **extra):
    return {"host": "", "directory": str(out), "connection_parameters": {"mode": "copy"}, "publish_topic": "/out",
            "dispatch_configs": [{"topics": [TOPIC]}], **extra}


def test_a_limited_target_delivers_and_takes_from_its_buckets(harness, make_file, tmp_path):
    out = tmp_path / "out"
    dispatcher = harness.start({"target_defaults": {"bwlimit_per_host": "1G"},
                                "local": target(out, bwlimit="00:00,2G Sat-00:00,3G")}, warm_topic=TOPIC)
    content = os.urandom(3 * 1024 * 1024 + 5)
    source = make_file("n19.dat", content)
    harness.send(TOPIC, "file", {"uri": str(source), "uid": source.name})
    assert harness.recorder.wait_for(lambda m: m.type == "file")
    assert (out / "n19.dat").read_bytes() == content
    limits = dispatcher.limits
    assert limits.bucket(("target", "local"), Schedule.parse("00:00,2G Sat-00:00,3G")).taken == len(content)
    assert limits.bucket(("host", "localhost"), Schedule.parse("1G")).taken == len(content)


@pytest.mark.parametrize(("value", "found"), [("20M", Schedule.parse("20M")), (False, None), (0, None)])
def test_limits_are_read_off_included(tmp_path, value, found):
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump({"t": target(tmp_path, bwlimit=value)}))
    assert load_config(path, default_host()).targets[0].bwlimit == found


def test_a_bad_limit_names_the_target_and_key(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump({"target_defaults": {"bwlimit_per_host": "9:00,1M 8h,off"}, "t": target(tmp_path)}))
    with pytest.raises(ConfigError, match=r"\[t\] bwlimit_per_host: timetable entry '8h,off'"):
        load_config(path, default_host())
