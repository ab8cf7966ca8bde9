"""Bandwidth limits of a server's pushes: concurrent pushes to one host draw from one bucket, a
limited chain still delivers every byte (end to end with our client), bad limits fail the start."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from posttroll.message import Message
from support.bus import free_port, wait_until
from support.client import prime, results, start_client, write_all
from support.files import put_file, write_file
from support.ini import write_ini
from support.reqrep import reply as request
from support.server import TOPIC, chain
from trollmoves_roles.server.config import load_config

from trollmoves_core.bwlimit import Schedule
from trollmoves_core.exceptions import ConfigError

pytestmark = pytest.mark.timeout(120)

MIB = 1024 * 1024


def test_concurrent_pushes_to_one_host_take_from_one_bucket(serve, dirs):
    origin, out = dirs
    running = serve(chain(origin, free_port(), connection_parameters__mode="copy", bwlimit="2G",
                          bwlimit_per_host="1G"))
    names = [f"NOAA-{n}_20240102030{n}.dat" for n in range(4)]
    contents = {name: os.urandom(2 * MIB + n) for n, name in enumerate(names)}
    messages = [running.announced(put_file(origin / name, contents[name]).name) for name in names]
    pushes = [Message(TOPIC, "push", {**m.data, "destination": f"file://{out}/"}) for m in messages]
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda push: request(running.address(), push), pushes))
    assert [r.type for r in replies] == ["file"] * 4
    limits = running.server.transfers.limits
    total = sum(len(c) for c in contents.values())
    assert limits.bucket(("host", "localhost"), Schedule.parse("1G")).taken == total
    assert limits.bucket(("chain", "chain"), Schedule.parse("2G")).taken == total
    assert len(limits) == 2
    assert all((out / name).read_bytes() == content for name, content in contents.items())


def test_a_limited_chain_delivers_every_file_end_to_end(servers, tmp_path):
    server = servers("srv", extra={"bwlimit": "200M", "bwlimit_per_host": "00:00,100M Sun-12:00,150M",
                                   "connection_parameters__mode": "copy"})
    client, recorder, out = start_client(tmp_path, server.provider)
    contents = {f"f{i}.dat": os.urandom(MIB + i) for i in range(6)}
    try:
        prime(lambda name: write_file(server.inbox, f"{name}.dat", b"probe"), recorder)
        write_all(contents, server.inbox)
        assert wait_until(lambda: len(results(recorder)) >= len(contents), timeout=60)
    finally:
        client.stop()
        recorder.close()
    assert all((out / name).read_bytes() == content for name, content in contents.items())
    assert "pushes limited to 200M for the chain, 00:00,100M Sun-12:00,150M per destination host" in server.log()


@pytest.mark.parametrize(("key", "value", "message"), [
    ("bwlimit", "fast", "bwlimit: expected a rate such as 20M"),
    ("bwlimit_per_host", "08:00,10M 25:00,off", "bwlimit_per_host: timetable entry '25:00,off': no such time"),
])
def test_a_bad_limit_is_a_config_error_naming_the_key(tmp_path, key, value, message):
    config = write_ini(tmp_path / "server.ini", chain(tmp_path, 9, **{key: value}))
    with pytest.raises(ConfigError, match=message):
        load_config(config)


def test_check_names_each_bad_limit_and_fails(tmp_path, capsys):
    from trollmoves_core.cli import main

    (tmp_path / "in").mkdir()
    config = write_ini(tmp_path / "server.ini", {"DEFAULT": {"bwlimit_per_host": "08:00,10M Mox-18:00,off"},
                                                 **chain(tmp_path / "in", 9, bwlimit="20Q")})
    assert main(["check", str(config)]) == 2
    out = capsys.readouterr().out
    assert "[chain] bwlimit: expected a rate such as 20M, 512k or off, got '20Q'" in out
    assert "[chain] bwlimit_per_host: timetable entry 'Mox-18:00,off': unknown day 'Mox'" in out
    assert "Traceback" not in out
