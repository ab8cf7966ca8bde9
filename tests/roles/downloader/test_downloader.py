"""The downloader on a real loopback bus: file:// always, moto S3 when the S3 mover is there."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.downloader import OUT_TOPIC
from support.movers import require_mover
from trollmoves_roles.downloader.config import load_config

from trollmoves_core.exceptions import ConfigError

TROLLMOVES = str(Path(sys.executable).with_name("trollmoves"))


def remote_file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / "remote" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def terminate(process: subprocess.Popen) -> int:
    """SIGTERM ``process`` and return its exit status (killed, and raising, when it hangs)."""
    import signal

    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def test_file_uri_is_downloaded_and_announced(harness, tmp_path):
    harness.start()
    source = remote_file(tmp_path, "avhrr_20240102.nc", b"orbit data")
    harness.send("file", {"uri": f"file://{source}", "uid": source.name, "platform_name": "NOAA-19",
                          "start_time": dt.datetime(2024, 1, 2, 3, 4), "filesystem": {"protocol": "file"},
                          "path": str(source), "request_address": "10.0.0.1:9010", "destination": "file:///x/"})

    (message,) = harness.recorder.wait_for(lambda m: m.type == "file")
    local = harness.destination / source.name
    assert local.read_bytes() == b"orbit data"
    assert message.subject == OUT_TOPIC and message.version == "v1.2"
    assert message.data["uri"] == str(local) and message.data["uid"] == source.name
    assert message.data["platform_name"] == "NOAA-19"
    assert message.data["start_time"].replace(tzinfo=None) == dt.datetime(2024, 1, 2, 3, 4)
    assert "filesystem" not in message.data and "path" not in message.data
    # a client would take a copy announced with a request_address for a server's announcement
    assert "request_address" not in message.data and "destination" not in message.data
    assert not [p for p in harness.destination.iterdir() if p.name.startswith(".")], "temporary file left"


def test_dataset_is_announced_once_all_files_are_here(harness, tmp_path):
    harness.start()
    parts = [remote_file(tmp_path, f"seg{i}.dat", f"part {i}".encode()) for i in range(3)]
    harness.send("dataset", {"platform_name": "Metop-B",
                             "dataset": [{"uri": str(p), "uid": p.name} for p in parts]})

    (message,) = harness.recorder.wait_for(lambda m: m.type == "dataset")
    assert [item["uri"] for item in message.data["dataset"]] == [str(harness.destination / p.name) for p in parts]
    assert all((harness.destination / p.name).read_text() == f"part {i}" for i, p in enumerate(parts))
    assert message.data["platform_name"] == "Metop-B"


def test_missing_and_bad_messages_are_skipped_and_serving_goes_on(harness, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    downloader = harness.start()
    harness.send("file", {"uri": f"file://{tmp_path}/remote/missing.nc", "uid": "missing.nc"})
    harness.send("file", {"uid": "no-uri.nc"})
    harness.send("file", {"uri": "gopher://h.example/x.nc", "uid": "x.nc"})
    harness.send("dataset", {"dataset": [{"uri": str(remote_file(tmp_path, "d1.nc", b"1"))},
                                         {"uri": f"{tmp_path}/remote/d2-missing.nc"}]})
    good = remote_file(tmp_path, "good.nc", b"good")
    harness.send("file", {"uri": str(good), "uid": "good.nc"})

    harness.wait_idle(handled=5)
    announced = harness.recorder.wait_for(lambda m: m.type in ("file", "dataset"))
    assert [m.data["uid"] for m in announced] == ["good.nc"]
    assert downloader.failed == 2
    assert "missing.nc" in caplog.text and "Download failed" in caplog.text
    assert "without 'uri'" in caplog.text
    assert "no mover for 'gopher://'" in caplog.text
    assert "d2-missing.nc" in caplog.text
    assert (harness.destination / "good.nc").read_bytes() == b"good"


def test_s3_objects_are_downloaded_with_s3_kwargs(harness, request, tmp_path):
    require_mover("s3")
    if "s3_params" not in request.fixturenames and not (Path(__file__).parents[2] / "s3" / "conftest.py").exists():
        pytest.skip("S3 FIXTURES MISSING: tests/s3/conftest.py is not there yet")
    endpoint = request.getfixturevalue("s3")
    bucket = request.getfixturevalue("bucket")
    boto = request.getfixturevalue("boto")
    boto.put_object(Bucket=bucket, Key="l1b/2024/hrpt_noaa19.l1b", Body=b"from the cloud")
    boto.put_object(Bucket=bucket, Key="flat.nc", Body=b"flat")
    downloader = harness.start(bucket=bucket, s3_kwargs={"key": "testing", "secret": "testing",
                                                         "client_kwargs": {"endpoint_url": endpoint},
                                                         "retries": 1})
    # as s3stalker (pytroll-watchers) announces it
    harness.send("file", {"uri": f"s3://{bucket}/l1b/2024/hrpt_noaa19.l1b", "uid": "hrpt_noaa19.l1b",
                          "filesystem": {"cls": "s3fs.core.S3FileSystem", "protocol": "s3"},
                          "path": f"{bucket}/l1b/2024/hrpt_noaa19.l1b", "sensor": "avhrr/3"})
    harness.send("file", {"uri": f"s3://{bucket}/l1b/missing.l1b", "uid": "missing.l1b"})
    harness.send("file", {"uri": "s3://some-other-bucket/x.nc", "uid": "x.nc"})
    harness.send("file", {"uri": "flat.nc", "uid": "flat.nc"})  # upstream's rule: bucket + basename

    announced = harness.recorder.wait_for(lambda m: m.type == "file", count=2)
    harness.wait_idle(handled=4)
    assert sorted(m.data["uid"] for m in announced) == ["flat.nc", "hrpt_noaa19.l1b"]
    assert (harness.destination / "hrpt_noaa19.l1b").read_bytes() == b"from the cloud"
    assert (harness.destination / "flat.nc").read_bytes() == b"flat"
    assert not (harness.destination / "x.nc").exists()
    assert downloader.failed == 1 and downloader.fetched == 2
    s3_message = next(m for m in announced if m.data["uid"] == "hrpt_noaa19.l1b")
    assert s3_message.data["sensor"] == "avhrr/3" and "filesystem" not in s3_message.data


# -- configuration ---------------------------------------------------------------------------

def test_upstream_config_loads_and_unsupported_keys_are_named(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    path = tmp_path / "s3downloader.yaml"
    path.write_text(yaml.safe_dump({
        "logging": {"log_rotation_days": 1, "log_rotation_backup": 30, "logging_mode": "DEBUG"},
        "subscribe-topic": "/yuhu", "publish-topic": "/idnt", "bucket": "atms-sdr",
        "download_destination": "./", "s3_kwargs": {"anon": False, "client_kwargs": {"endpoint_url": "https://x"}},
        "services": "", "subscriber_addresses": "tcp://127.0.0.1:40001, tcp://127.0.0.1:40002",
        "compress": True}))
    config = load_config(path)
    assert config.subscribe_topics == ("/yuhu",) and config.publish_topic == "/idnt"
    assert config.subscriber_addresses == ("tcp://127.0.0.1:40001", "tcp://127.0.0.1:40002")
    assert config.params_for("s3")["client_kwargs"] == {"endpoint_url": "https://x"}
    assert config.subscribe_nameservers == ("localhost",)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith(f"{path}: logging: not used here") for line in lines)
    assert f"{path}: compress: unknown key, ignored" in lines


def test_top_level_s3_credentials_of_older_upstream_versions_are_used(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    path = tmp_path / "s3downloader.yaml"
    path.write_text(yaml.safe_dump({
        "subscribe-topic": ["/yuhu"], "publish-topic": "/idnt", "bucket": "atms-sdr",
        "endpoint_url": "https://your.url.space", "access_key": "ak", "secret_key": "sk",
        "s3_kwargs": {"secret": "from-kwargs"}}))
    params = load_config(path).params_for("s3")
    assert params == {"key": "ak", "secret": "from-kwargs", "client_kwargs": {"endpoint_url": "https://your.url.space"}}
    assert caplog.records == []


@pytest.mark.parametrize(("settings", "expected"), [
    ({"publish-topic": "/x"}, "subscribe-topic: required"),
    ({"subscribe-topic": "/x"}, "publish-topic: required"),
    ({"subscribe-topic": "/x", "publish-topic": "/y", "parallel_downloads": 0}, "parallel_downloads: must be at"),
    ({"subscribe-topic": "/x", "publish-topic": "/y", "s3_kwargs": "anon"}, "s3_kwargs: expected a mapping"),
    ({"subscribe-topic": "/x", "publish-topic": "/y", "bucket": "a/b/c"}, "bucket: expected a bucket name"),
    ({"subscribe-topic": "/x", "publish-topic": "/y", "subscriber_addresses": "127.0.0.1"},
     "subscriber_addresses: expected host:port"),
])
def test_bad_configs_name_the_key(tmp_path, settings, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(settings))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: ") and expected in str(info.value)


@pytest.mark.parametrize("text", ["subscribe-topic: /x\n", "subscribe-topic: [/x\n"])
def test_bad_config_exits_2_with_one_line(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = subprocess.run([TROLLMOVES, "downloader", str(path)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"trollmoves: error: {path}"), result.stderr


# -- other schemes, and the real process ------------------------------------------------------

def test_sftp_and_ftp_uris_work_the_same(harness, tmp_path, tmp_path_factory):
    require_mover("sftp")
    require_mover("ftp")
    testing = pytest.importorskip("trollmoves_ssh.testing")
    if not testing.sshd_available():
        pytest.skip(f"SSHD MISSING: {testing.INSTALL_HINT}")
    pytest.importorskip("pyftpdlib")
    sys.path.insert(0, str(Path(__file__).parents[2] / "ftp"))
    ftp_servers = pytest.importorskip("ftp_servers")
    sshd = testing.start_sshd(tmp_path_factory.mktemp("sshd"))
    ftp = ftp_servers.start_server(tmp_path / "ftp-root")
    try:
        harness.start(connection_parameters=sshd.mover_params(retry_delay="0.01"))
        over_ssh = remote_file(tmp_path, "ssh.nc", b"via sftp")
        (ftp.root / "pub").mkdir()
        (ftp.root / "pub" / "ftp.nc").write_bytes(b"via ftp")
        harness.send("file", {"uri": sshd.uri("sftp", str(over_ssh)), "uid": "ssh.nc"})
        ftp_uri = f"ftp://{ftp_servers.USER}:{ftp_servers.PASSWORD}@127.0.0.1:{ftp.port}/pub/ftp.nc"
        harness.send("file", {"uri": ftp_uri, "uid": "ftp.nc"})

        announced = harness.recorder.wait_for(lambda m: m.type == "file", count=2)
        assert sorted(m.data["uid"] for m in announced) == ["ftp.nc", "ssh.nc"]
        assert (harness.destination / "ssh.nc").read_bytes() == b"via sftp"
        assert (harness.destination / "ftp.nc").read_bytes() == b"via ftp"
        assert all(ftp_servers.PASSWORD not in m.encode() for m in announced)
    finally:
        ftp.stop()
        sshd.stop()


def test_full_run_downloads_announces_and_stops_on_sigterm(tmp_path):

    from posttroll.message import Message
    from support.bus import BusRecorder, free_port, wait_until
    from trollmoves_roles.bus.posttroll import BusPublisher

    source = BusPublisher(0, bind="127.0.0.1", name="s3stalker")
    out_port = free_port()
    config = tmp_path / "downloader.yaml"
    config.write_text(yaml.safe_dump({
        "subscribe-topic": "/new", "publish-topic": "/here", "download_destination": str(tmp_path / "dl"),
        "subscriber_addresses": f"tcp://127.0.0.1:{source.port}", "publish_port": out_port}))
    payload = remote_file(tmp_path, "p.nc", b"payload")
    log = tmp_path / "downloader.log"
    process = subprocess.Popen([TROLLMOVES, "downloader", "--config-file", str(config), "-r", "false",
                                "--publish-bind", "127.0.0.1", "-l", str(log)])
    recorder = BusRecorder([f"tcp://127.0.0.1:{out_port}"])
    local = tmp_path / "dl" / "p.nc"
    try:
        message = Message("/new/x", "file", {"uri": f"file://{payload}", "uid": "p.nc"})
        # resend until an announcement is recorded: PUB/SUB drops what precedes a connection
        assert wait_until(lambda: (source.send(message), recorder.of_type("file"))[1], timeout=30, interval=0.2), \
            log.read_text() if log.exists() else "no log"
        announced = recorder.of_type("file")
        assert announced[0].subject == "/here" and announced[0].data["uri"] == str(local)
    finally:
        code = terminate(process)
        recorder.close()
        source.stop()
    assert code == 0
    assert local.read_bytes() == b"payload"


def test_sighup_and_a_changed_file_reload_the_config(tmp_path):
    import os
    import signal

    from posttroll.message import Message
    from support.bus import BusRecorder, free_port, wait_until
    from trollmoves_roles.bus.posttroll import BusPublisher

    source = BusPublisher(0, bind="127.0.0.1", name="s3stalker")
    out_port = free_port()
    config = tmp_path / "downloader.yaml"
    settings = {"subscribe-topic": "/new", "publish-topic": "/here", "download_destination": str(tmp_path / "dl"),
                "subscriber_addresses": f"tcp://127.0.0.1:{source.port}", "publish_port": out_port,
                "subscribe_nameserver": False}
    config.write_text(yaml.safe_dump(settings))
    payload = remote_file(tmp_path, "p.nc", b"payload")
    log = tmp_path / "downloader.log"
    process = subprocess.Popen([TROLLMOVES, "downloader", str(config), "--publish-bind", "127.0.0.1",
                                "-l", str(log)])
    recorder = BusRecorder([f"tcp://127.0.0.1:{out_port}"])
    try:
        message = Message("/new/x", "file", {"uri": f"file://{payload}", "uid": "p.nc"})
        assert wait_until(lambda: (source.send(message), recorder.of_type("file"))[1], timeout=30, interval=0.2), \
            log.read_text() if log.exists() else "no log"
        process.send_signal(signal.SIGHUP)  # upstream's s3downloader (and ours before) died of it
        assert wait_until(lambda: "reloaded" in log.read_text(), timeout=10), log.read_text()
        assert process.poll() is None

        settings.update({"subscribe-topic": "/other", "download_destination": str(tmp_path / "dl2"),
                         "parallel_downloads": 2})
        partial = tmp_path / ".downloader.yaml.part"
        partial.write_text(yaml.safe_dump(settings))
        os.replace(partial, config)
        moved = Message("/other/x", "file", {"uri": f"file://{payload}", "uid": "p.nc"})
        assert wait_until(lambda: (source.send(moved), (tmp_path / "dl2" / "p.nc").exists())[1], timeout=30,
                          interval=0.2), log.read_text()
        assert "parallel_downloads changed; it takes effect at the next restart" in log.read_text()
    finally:
        code = terminate(process)
        recorder.close()
        source.stop()
    assert code == 0
