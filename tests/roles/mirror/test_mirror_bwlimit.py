"""Bandwidth limits of a mirror's pushes to external clients, as a server chain's."""

from __future__ import annotations

import os

import pytest
from posttroll.message import Message
from support.ini import write_ini
from support.mirror import InternalServer, announce_until_mirrored, request
from trollmoves_roles.mirror.config import load_mirror_config

from trollmoves_core.bwlimit import Schedule
from trollmoves_core.exceptions import ConfigError

pytestmark = pytest.mark.timeout(120)


def test_a_limited_mirror_push_is_delivered_and_charged(mirror, announcer, tmp_path):
    content = os.urandom(2 * 1024 * 1024 + 9)
    internal = InternalServer({"a.dat": content})
    running, recorder, port = mirror(remove_delay=0, bwlimit="2G", bwlimit_per_host="1G",
                                     connection_parameters__mode="copy")
    try:
        announce_until_mirrored(lambda: announcer.announce("a.dat", internal), recorder, "a.dat")
        out = tmp_path / "out"
        push = Message("/mirror/data", "push", {"name": "a", "uri": "/in/a.dat", "uid": "a.dat",
                                                "request_address": "ignored:1", "destination": f"file://{out}/"})
        reply = request(f"127.0.0.1:{port}", push)
        assert isinstance(reply, Message) and reply.type == "file", reply
    finally:
        internal.stop()
    assert (out / "a.dat").read_bytes() == content
    limits = running.mirror.transfers.limits
    assert limits.bucket(("chain", "mirror"), Schedule.parse("2G")).taken == len(content)
    assert limits.bucket(("host", "localhost"), Schedule.parse("1G")).taken == len(content)


def test_a_bad_mirror_limit_names_the_key(tmp_path):
    path = write_ini(tmp_path / "m.ini", {"m": {"providers": "127.0.0.1:9010", "topic": "/t", "request_port": 9100,
                                                "bwlimit_per_host": "10Z"}})
    with pytest.raises(ConfigError, match=r"\[m\] bwlimit_per_host: expected a rate"):
        load_mirror_config(path)
