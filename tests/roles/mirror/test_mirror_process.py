"""``trollmoves mirror`` as a process: bad config, busy port, heartbeats, SIGHUP, SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess

import pytest
from posttroll.message import Message
from support.bus import BusRecorder, free_port, wait_until
from support.ini import write_ini
from support.mirror import (
    InternalServer,
    MirrorSubprocess,
    announce_until_mirrored,
    mirror_section,
    request,
    staging_dirs,
    wait_heartbeat,
)
from support.processes import TROLLMOVES
from support.scripted import Announcer

pytestmark = pytest.mark.timeout(120)


def run_mirror(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TROLLMOVES), "mirror", *args], capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.parametrize(("section", "key"), [
    ({"request_port": "not-a-port"}, "request_port"),
    ({"request_port": ""}, "request_port"),
    ({"topic": ""}, "topic"),
    ({"providers": "nohostport"}, "providers"),
    ({"destination": "s3://bucket/staging/"}, "destination"),
    ({"remove_delay": "-1"}, "remove_delay"),
    ({"origin": "/data/{name"}, "origin"),
])
def test_bad_config_exits_2_with_one_line_naming_the_key(tmp_path, section, key):
    config = write_ini(tmp_path / "mirror.ini", {"m": {**mirror_section("127.0.0.1:9", free_port()), **section}})
    result = run_mirror(str(config), "-p", str(free_port()), "--bind", "127.0.0.1")
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trollmoves: error: "), result.stderr
    assert f"{config}: [m] {key}:" in lines[0]


def test_missing_config_and_busy_ports_exit_2(tmp_path):
    missing = run_mirror(str(tmp_path / "nope.ini"))
    assert missing.returncode == 2 and "nope.ini" in missing.stderr and len(missing.stderr.splitlines()) == 1
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write_ini(tmp_path / "mirror.ini", {"m": mirror_section("127.0.0.1:9", free_port())})
        publisher = run_mirror(str(config), "-p", str(port), "--bind", "127.0.0.1")
        config = write_ini(tmp_path / "mirror.ini", {"m": mirror_section("127.0.0.1:9", port)})
        requests = run_mirror(str(config), "-p", str(free_port()), "--bind", "127.0.0.1")
    assert publisher.returncode == 2 and error_lines(publisher) == [
        f"trollmoves: error: {config}: cannot publish on tcp://127.0.0.1:{port}: Address already in use"]
    assert requests.returncode == 2 and error_lines(requests) == [
        f"trollmoves: error: {config}: [m] request_port: cannot listen on tcp://127.0.0.1:{port}: "
        "Address already in use"]
    assert "stopped" not in requests.stderr


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The launcher's error lines (log lines of what started before the failure aside)."""
    return [line for line in result.stderr.splitlines() if line.startswith("trollmoves: error:")]


def test_heartbeat_sighup_and_sigterm_removes_staged_copies(tmp_path):
    announcer, internal = Announcer(), InternalServer({"s.dat": b"sierra"})
    staging = tmp_path / "staging"
    staging.mkdir()
    request_port = free_port()
    config = write_ini(tmp_path / "mirror.ini", {"m": mirror_section(announcer.provider, request_port,
                                                                     working_directory=staging)})
    process = MirrorSubprocess(config, tmp_path / "mirror.log")
    recorder = BusRecorder([f"tcp://{process.provider}"], ["/"])
    try:
        process.wait_running()
        wait_heartbeat(recorder)
        announce_until_mirrored(lambda: announcer.announce("s.dat", internal), recorder, "s.dat")
        reply = request(f"127.0.0.1:{request_port}", Message("/mirror/data", "push", {
            "uri": "/in/s.dat", "uid": "s.dat", "destination": f"file://{tmp_path}/out/"}))
        assert reply.type == "file", reply
        assert len(staging_dirs(staging)) == 1  # kept for remove_delay (30 s) for later requests
        process.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "Config reloaded: no section changed" in process.log()), process.log()
        assert process.proc.poll() is None
        process.proc.send_signal(signal.SIGTERM)
        process.proc.wait(30)
    finally:
        status = process.stop()
        recorder.close()
        announcer.stop()
        internal.stop()
    assert status == 0, process.log()
    assert "Mirror stopped" in process.log()
    assert staging_dirs(staging) == []
    assert (tmp_path / "out" / "s.dat").read_bytes() == b"sierra"
    beats = [m for m in recorder.messages if m.type == "beat"]
    assert beats[0].subject == "/heartbeat/move_it_mirror" and beats[0].data == {"min_interval": 30}


def test_trollmoves_check_reads_the_mirror_config(tmp_path):
    # (the generic checks want a destination and nameservers = false, as for upstream's mirror)
    good = write_ini(tmp_path / "good.ini", {"m": mirror_section(
        "127.0.0.1:9", free_port(), delay=1, origin=f"{tmp_path}/{{name}}.dat", destination=f"{tmp_path}/",
        nameservers="false", publish_port=free_port())})
    bad = write_ini(tmp_path / "bad.ini", {"m": {k: v for k, v in mirror_section("127.0.0.1:9", 1).items()
                                                 if k != "request_port"} | {"origin": f"{tmp_path}/{{name}}.dat"}})
    checked = [subprocess.run([str(TROLLMOVES), "check", str(path)], capture_output=True, text=True, timeout=60,
                              check=False) for path in (good, bad)]
    assert checked[0].returncode == 0 and "checked as mirror" in checked[0].stdout, checked[0]
    assert checked[1].returncode == 2 and f"{bad}: [m] request_port: required key is missing" in checked[1].stdout
