"""The dispatcher pushing to real remote servers: pyftpdlib, OpenSSH sshd, moto S3.

Each case is skipped, with a reason, when its mover plugin or server is not available.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support.movers import TESTS, require_mover

TOPIC = "/level2/avhrr"
SECRET = "s3cret-pw"


@pytest.fixture
def ftp_server(tmp_path):
    require_mover("ftp")
    pytest.importorskip("pyftpdlib")
    sys.path.insert(0, str(TESTS / "ftp"))
    ftp_servers = pytest.importorskip("ftp_servers")
    server = ftp_servers.start_server(tmp_path / "ftp-root")
    yield server, ftp_servers
    server.stop()


def test_ftp_target_reuses_one_login_and_hides_the_password(harness, make_file, ftp_server):
    server, ftp_servers = ftp_server
    assert ftp_servers.PASSWORD == SECRET
    host = f"ftp://{ftp_servers.USER}:{ftp_servers.PASSWORD}@127.0.0.1:{server.port}"
    config = {"ftp": {"host": host, "directory": "/incoming/{platform_name}", "publish_topic": "/dispatched/ftp",
                      "publish_uri": "url", "connection_parameters": {"connection_uptime": 30},
                      "dispatch_configs": [{"topics": [TOPIC]}]}}
    harness.start(config, warm_topic=TOPIC, workers=1)  # one worker: each file can reuse the session
    for name in ("a.dat", "b.dat", "c.dat"):
        harness.send(TOPIC, "file", {"uri": str(make_file(name, name.encode())), "uid": name,
                                     "platform_name": "NOAA-20"})

    announced = harness.recorder.wait_for(lambda m: m.type == "file", count=3)
    for name in ("a.dat", "b.dat", "c.dat"):
        assert (server.root / "incoming" / "NOAA-20" / name).read_bytes() == name.encode()
    assert server.counters.logins == 1, "the mover should reuse its FTP session across files"
    uris = sorted(m.data["uri"] for m in announced)
    assert uris[0] == f"ftp://{ftp_servers.USER}@127.0.0.1:{server.port}/incoming/NOAA-20/a.dat"
    assert all(SECRET not in m.encode() for m in harness.recorder.messages)


def test_sftp_target(harness, make_file, tmp_path_factory):
    require_mover("sftp")
    testing = pytest.importorskip("trollmoves_ssh.testing")
    if not testing.sshd_available():
        pytest.skip(f"SSHD MISSING: {testing.INSTALL_HINT}")
    sshd = testing.start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        remote = tmp_path_factory.mktemp("sftp-remote")
        config = {"sftp": {"host": f"sftp://{sshd.user}@127.0.0.1:{sshd.port}", "directory": str(remote) + "/{sensor}",
                           "filepattern": "{platform_name}-{uid}", "publish_topic": "/dispatched/sftp",
                           "connection_parameters": sshd.mover_params(retry_delay="0.01"),
                           "dispatch_configs": [{"topics": [TOPIC]}]}}
        harness.start(config, warm_topic=TOPIC)
        harness.send(TOPIC, "file", {"uri": str(make_file("x.nc", b"over ssh")), "uid": "x.nc",
                                     "platform_name": "Metop-C", "sensor": "avhrr"})
        (message,) = harness.recorder.wait_for(lambda m: m.type == "file")
        delivered = remote / "avhrr" / "Metop-C-x.nc"
        assert delivered.read_bytes() == b"over ssh"
        assert message.data["uri"] == str(delivered)  # upstream announces the path on the remote host
    finally:
        sshd.stop()


def test_s3_target(harness, make_file, request):
    require_mover("s3")
    if "s3_params" not in request.fixturenames and _no_s3_fixtures():
        pytest.skip("S3 FIXTURES MISSING: tests/s3/conftest.py is not there yet")
    params = request.getfixturevalue("s3_params")
    bucket = request.getfixturevalue("bucket")
    boto = request.getfixturevalue("boto")
    config = {"s3": {"host": f"s3://{bucket}", "directory": "/l2/{platform_name}",
                     "publish_topic": "/dispatched/s3", "connection_parameters": params,
                     "dispatch_configs": [{"topics": [TOPIC]}]}}
    harness.start(config, warm_topic=TOPIC)
    harness.send(TOPIC, "dataset", {"platform_name": "S3A", "dataset": [
        {"uri": str(make_file("p1.nc", b"one")), "uid": "p1.nc"},
        {"uri": str(make_file("p2.nc", b"two")), "uid": "p2.nc"}]})
    announced = harness.recorder.wait_for(lambda m: m.type == "file", count=2)
    assert sorted(m.data["uri"] for m in announced) == ["/l2/S3A/p1.nc", "/l2/S3A/p2.nc"]
    body = boto.get_object(Bucket=bucket, Key="l2/S3A/p2.nc")["Body"].read()
    assert body == b"two"


def _no_s3_fixtures() -> bool:
    return not (Path(TESTS) / "s3" / "conftest.py").exists()


def test_unreachable_destination_is_retried_a_bounded_number_of_times(harness, make_file, caplog):
    require_mover("ftp")
    from support.bus import free_port

    port = free_port()  # nothing listens there: connection refused, a transient error
    config = {"down": {"host": f"ftp://u:{SECRET}@127.0.0.1:{port}", "directory": "/in", "publish_topic": "/x",
                       "connection_parameters": {"retries": 3, "retry_delay": 0.01},
                       "dispatch_configs": [{"topics": [TOPIC]}]}}
    dispatcher = harness.start(config, warm_topic=TOPIC)
    harness.send(TOPIC, "file", {"uri": str(make_file("r.nc")), "uid": "r.nc"})
    harness.wait_idle(handled=1)

    assert dispatcher.failed == 1
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2 and "attempt 1 of 3" in retries[0] and "attempt 2 of 3" in retries[1]
    (final,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Dispatching")]
    assert f"ftp://u@127.0.0.1:{port}/in/r.nc" in final and "target down" in final
    assert SECRET not in caplog.text
