"""``trollmoves dispatcher`` as a real process: configuration errors and a full run."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from posttroll.message import Message
from support.bus import BusRecorder, free_port, wait_until
from trollmoves_roles.bus.posttroll import BusPublisher

TROLLMOVES = str(Path(sys.executable).with_name("trollmoves"))
TOPIC = "/level2/avhrr"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TROLLMOVES, "dispatcher", *args], capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.parametrize(("text", "expected"), [
    (None, "cannot read"),
    ("t: {directory: /x, dispatch_configs: [{topics: [/a]}\n", "invalid YAML"),
    ("t: {host: 'gopher://u:hidden@h', directory: /x, dispatch_configs: [{topics: [/a]}]}\n",
     "[t] host: no mover for 'gopher://'"),
    ("t: {directory: /x}\n", "[t] dispatch_configs: required"),
    # conditions one level off: ignoring them would send every file
    ("t: {directory: /x, dispatch_configs: [{topics: [/a]}], conditions: [{sensor: avhrr}]}\n",
     "[t] conditions: belongs in a dispatch_configs item"),
])
def test_bad_config_exits_2_with_one_line(tmp_path, text, expected):
    path = tmp_path / "dispatch.yaml"
    if text is not None:
        path.write_text(text)
    result = run(str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"trollmoves: error: {path}") and expected in lines[0]
    assert "hidden" not in result.stderr


def test_bad_subscribe_address_exits_2(tmp_path):
    path = tmp_path / "dispatch.yaml"
    path.write_text(f"t: {{directory: {tmp_path}, dispatch_configs: [{{topics: [/a]}}]}}\n")
    result = run(str(path), "-s", "nowhere")
    assert result.returncode == 2
    assert result.stderr.strip() == ("trollmoves: error: command line: --subscribe-address: "
                                     "expected host:port or tcp://host:port, got 'nowhere'")


def test_publish_port_in_use_exits_2_naming_the_config(tmp_path):
    import socket

    path = tmp_path / "dispatch.yaml"
    path.write_text(f"t: {{directory: {tmp_path}, dispatch_configs: [{{topics: [/a]}}]}}\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(str(path), "-s", "127.0.0.1:9", "--publish-bind", "127.0.0.1", "-p", str(port))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"trollmoves: error: {path}: cannot publish on tcp://127.0.0.1:{port}: Address already in use")


def test_missing_config_argument_exits_2():
    result = run()
    assert result.returncode == 2
    assert "missing the CONFIG argument" in result.stderr


def test_full_run_delivers_announces_and_stops_on_sigterm(tmp_path):
    source = BusPublisher(0, bind="127.0.0.1", name="test-source")
    out_port = free_port()
    config = tmp_path / "dispatch.yaml"
    config.write_text(yaml.safe_dump({
        "posttroll_subscriber": {"subscribe_addresses": [f"tcp://127.0.0.1:{source.port}"], "nameserver": False},
        "local": {"directory": str(tmp_path / "out") + "/{platform_name}", "publish_topic": "/dispatched",
                  "dispatch_configs": [{"topics": [TOPIC]}]}}))
    payload = tmp_path / "in" / "f.nc"
    payload.parent.mkdir()
    payload.write_bytes(b"data")
    log = tmp_path / "dispatcher.log"
    # CONFIG last, after -n, as upstream's help suggests and its parser mishandles: it must still be found.
    process = subprocess.Popen([TROLLMOVES, "dispatcher", "-p", str(out_port), "--publish-bind", "127.0.0.1",
                                "-l", str(log), "-n", "127.0.0.1", str(config)])
    recorder = BusRecorder([f"tcp://127.0.0.1:{out_port}"])
    delivered = tmp_path / "out" / "NOAA-21" / "f.nc"
    try:
        message = Message(TOPIC, "file", {"uri": str(payload), "uid": "f.nc", "platform_name": "NOAA-21"})
        # PUB/SUB drops what is sent before a subscriber connects, on either side of the dispatcher:
        # resend (each resend is delivered and announced again) until an announcement is recorded.
        assert wait_until(lambda: (source.send(message), recorder.of_type("file"))[1], timeout=30, interval=0.2), \
            log.read_text() if log.exists() else "no log"
        announced = recorder.of_type("file")
        assert announced[0].subject == "/dispatched"
        assert announced[0].data["uri"] == str(delivered)
        assert delivered.read_bytes() == b"data"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        recorder.close()
        source.stop()
    assert code == 0
    assert "Received SIGTERM; stopping" in log.read_text()
