"""``allowed_destinations``: which destinations a client may make the server push to. The rules,
then a real server pushing (or refusing) to pyftpdlib and local directories, then bad patterns
as one-line config errors."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from posttroll.message import Message
from support.bus import free_port
from support.files import put_file
from support.ini import write_ini
from support.reqrep import reply as request
from support.server import TOPIC, chain
from trollmoves_roles.protocol.destinations import DestinationRules
from trollmoves_roles.server.config import load_config

TROLLMOVES = [str(Path(sys.executable).parent / "trollmoves")]
NAME = "NOAA-19_202401020304.dat"


def refusal(patterns: list[str], destination: str, rel_path: str | None = None, backups: tuple = ()) -> str | None:
    return DestinationRules.parse(patterns).refusal(destination, [("/in/a.dat", rel_path)], backups)


@pytest.mark.parametrize(("patterns", "destination"), [
    (["ftp://backup.example/incoming/*"], "ftp://user:pw@backup.example/incoming/"),
    (["ftp://backup.example/incoming/*"], "ftp://backup.example/incoming/renamed.dat"),
    (["ftp://backup.example*/incoming/**"], "ftp://u@backup.example:2121/incoming/"),
    (["ftp://h/in/**"], "ftp://h/in/"),
    (["ftp://h/in/**/a.dat"], "ftp://h/in/a.dat"),
    (["/data/out/**"], "/data/out/sub/"),
    (["/data/out/*"], "file://clienthost/data/out/"),  # the host of a file destination does not matter
    (["sftp://h/[ab]/*"], "sftp://h/a/"),
    (["SFTP://Archive.Example/Data/*"], "sftp://archive.EXAMPLE/Data/"),  # scheme and host in any case
    (["sftp://h/[!ab]/*"], "sftp://h/c/"),
    (["s3://bucket/in/*", "/data/**"], "/data/x/y/"),
    ([r"re:sftp://h[0-9]+/d/.*\.dat"], "sftp://h12/d/"),
])
def test_allowed(patterns, destination):
    assert refusal(patterns, destination) is None


@pytest.mark.parametrize(("patterns", "destination"), [
    (["ftp://backup.example/incoming/*"], "ftp://backup.example/incoming/sub/"),  # * stays in its segment
    (["ftp://backup.example/incoming/*"], "ftp://other.example/incoming/"),
    (["ftp://backup.example/incoming/*"], "ftp://backup.example:2121/incoming/"),
    (["ftp://backup.example/incoming/*"], "sftp://backup.example/incoming/"),
    (["/data/out/**"], "/data/out/../../etc/"),  # normalised before matching
    (["/data/out/**"], "/data/outside/"),
    (["sftp://h/[ab]/*"], "sftp://h/c/"),
    (["sftp://h/Data/*"], "sftp://h/data/"),  # paths are case-sensitive
    ([r"re:sftp://h[0-9]+/d/.*\.dat"], "sftp://h12/d/x.nc"),  # the whole location must match
    ([r"re:sftp://h[0-9]+/d/"], "sftp://h12/d/"),
])
def test_refused(patterns, destination):
    reason = refusal(patterns, destination)
    assert reason is not None and "allowed_destinations" in reason and patterns[0] in reason
    assert "pw" not in reason


def test_each_file_location_and_each_backup_host_must_be_allowed():
    assert refusal(["/out/*"], "/out/", rel_path="sub/a.dat") is not None
    assert refusal(["/out/**"], "/out/", rel_path="sub/a.dat") is None
    assert refusal(["ftp://h1/in/*", "ftp://h2/in/*"], "ftp://h1/in/", backups=("h2",)) is None
    reason = refusal(["ftp://h1/in/*"], "ftp://h1/in/", backups=("evil",))
    assert reason is not None and "backup host evil" in reason


@pytest.mark.parametrize(("pattern", "problem"), [
    ("re:sftp://(unclosed", "invalid regular expression"),
    ("ftp://h/[abc", "'[' without ']'"),
    ("relative/path/*", "expected scheme://host/path, /path or re:REGEX"),
    ("1ftp://h/*", "expected scheme://host/path"),
])
def test_bad_patterns(pattern, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        DestinationRules.parse([pattern])


# -- a real server ------------------------------------------------------------------------

@pytest.fixture
def ftp(tmp_path: Path) -> Iterator:
    testing = pytest.importorskip("trollmoves_ftp.testing")
    server = testing.start_server(tmp_path / "ftp-root")
    (server.root / "allowed").mkdir()
    (server.root / "other").mkdir()
    yield server, testing
    server.stop()


def push(running, data: dict, destination: str, **extra: object) -> Message:
    return request(running.address(), Message(TOPIC, "push", {**data, "destination": destination, **extra}))


def test_server_pushes_only_to_allowed_destinations(serve, dirs, ftp):
    origin, out = dirs
    server, testing = ftp
    rule = f"ftp://127.0.0.1:{server.port}/allowed/* {out}/**"
    running = serve(chain(origin, free_port(), allowed_destinations=rule,
                          connection_parameters__retry_delay="0.01"))
    put_file(origin / NAME, b"payload")
    data = running.announced(NAME).data
    auth = f"{testing.USER}:{testing.PASSWORD}@127.0.0.1:{server.port}"

    assert push(running, data, f"ftp://{auth}/allowed/").type == "file"
    assert (server.root / "allowed" / NAME).read_bytes() == b"payload"
    assert push(running, data, f"file://{out}/sub/").type == "file"

    refused = push(running, data, f"ftp://{auth}/other/")
    assert refused.type == "err", refused.data
    assert refused.data == (f"push refused: destination ftp://127.0.0.1:{server.port}/other/{NAME} is not allowed "
                            f"by allowed_destinations ({rule.replace(' ', ', ')})")
    assert not any((server.root / "other").iterdir())
    escape = push(running, data, f"file://{out}/../escaped/")
    assert escape.type == "err" and "allowed_destinations" in escape.data
    assert not (out.parent / "escaped").exists()
    # a backup host the rules do not allow is refused before anything is tried
    via = push(running, data, f"ftp://{testing.USER}:{testing.PASSWORD}@127.0.0.2:{server.port}/allowed/",
               backup_targets=["127.0.0.1"])
    assert via.type == "err" and "127.0.0.2" in via.data
    assert testing.PASSWORD not in refused.encode() + escape.encode() + via.encode()
    assert running.server.metrics.refused.value(chain="chain", reason="destination") == 3
    assert request(running.address(), Message(TOPIC, "ping")).type == "pong"


def test_without_the_key_any_destination_is_pushed_to(serve, dirs):
    origin, out = dirs
    running = serve(chain(origin, free_port()))
    put_file(origin / NAME, b"payload")
    assert push(running, running.announced(NAME).data, f"file://{out}/anywhere/").type == "file"


@pytest.mark.parametrize("command", ["server", "check"])
def test_a_bad_pattern_is_a_config_error_in_one_line(tmp_path, command):
    config = write_ini(tmp_path / "s.ini", {"chain": {"origin": f"{tmp_path}/{{name}}.dat", "topic": "/t",
                                                      "request_port": free_port(),
                                                      "allowed_destinations": "/ok/** re:ftp://(bad"}})
    args = ["server", "--bind", "127.0.0.1", "-p", "0"] if command == "server" else ["check"]
    result = subprocess.run([*TROLLMOVES, *args, str(config)], check=False, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() + result.stdout.strip().splitlines()
             if "allowed_destinations" in line]
    assert len(lines) == 1 and "invalid regular expression 'ftp://(bad'" in lines[0], result.stderr + result.stdout
    assert "[chain]" in lines[0] and "Traceback" not in result.stderr


def test_patterns_may_be_written_one_per_line(tmp_path):
    config = tmp_path / "s.ini"
    config.write_text(f"[chain]\norigin = {tmp_path}/{{name}}.dat\ntopic = /t\nrequest_port = 40000\n"
                      "allowed_destinations = ftp://backup.example/incoming/**\n"
                      "                       /data/out/*\n"
                      "                       re:sftp://archive[0-9]+\\.example/data/.*\n")
    chain = load_config(config)["chain"]
    assert chain.allowed_destinations == ("ftp://backup.example/incoming/**", "/data/out/*",
                                          r"re:sftp://archive[0-9]+\.example/data/.*")
    rules = DestinationRules.parse(chain.allowed_destinations)
    assert rules.refusal("sftp://archive7.example/data/", [("/in/x.nc", None)]) is None
