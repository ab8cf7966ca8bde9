"""Bandwidth limits of the downloader: a limited download is complete, all downloads and the source
host take from their buckets; a bad limit is a config error naming the key."""

from __future__ import annotations

import os

import pytest
import yaml
from trollmoves_roles.downloader.config import load_config

from trollmoves_core.bwlimit import Schedule
from trollmoves_core.exceptions import ConfigError


def test_a_limited_download_is_complete_and_charged(harness, tmp_path):
    downloader = harness.start(bwlimit="2G", bwlimit_per_host="08:00,1G 20:00,3G")
    source = tmp_path / "remote" / "big.nc"
    source.parent.mkdir()
    content = os.urandom(3 * 1024 * 1024 + 1)
    source.write_bytes(content)
    harness.send("file", {"uri": f"file://{source}", "uid": source.name})
    assert harness.recorder.wait_for(lambda m: m.type == "file")
    assert (harness.destination / source.name).read_bytes() == content
    limits = downloader.limits
    assert limits.bucket(("downloads",), Schedule.parse("2G")).taken == len(content)
    assert limits.bucket(("host", "localhost"), Schedule.parse("08:00,1G 20:00,3G")).taken == len(content)


@pytest.mark.parametrize(("key", "value"), [("bwlimit", "lots"), ("bwlimit_per_host", "Fun-08:00,1M")])
def test_a_bad_limit_names_the_key(tmp_path, key, value):
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump({"subscribe-topic": "/in", "publish-topic": "/out", key: value}))
    with pytest.raises(ConfigError, match=f"{key}: "):
        load_config(path)
