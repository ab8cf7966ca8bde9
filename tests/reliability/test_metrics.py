"""Prometheus metrics of the server and ``trollmoves status``."""

from __future__ import annotations

import signal
import subprocess
import urllib.error
import urllib.request

import pytest
from posttroll.message import Message
from support.bus import free_port, wait_until
from support.files import write_file
from support.ini import write_ini
from support.metrics import counter, metrics
from support.processes import TROLLMOVES
from support.reqrep import request
from support.server import TOPIC, server_section
from trollmoves_roles.observe.metrics import Counter, Gauge, Histogram, Registry, endpoint_file, read_endpoint
from trollmoves_roles.tools.status import parse_exposition, render_table

pytestmark = pytest.mark.timeout(120)


def test_exposition_format_round_trips():
    registry = Registry()
    files = registry.register(Counter("x_files_total", "Files."))
    files.inc(chain='a "quoted"\nname')
    files.inc(2, chain="b")
    registry.register(Gauge("x_queue", "Queue.", lambda: 3))
    seconds = registry.register(Histogram("x_seconds", "Durations.", buckets=(0.1, 1.0)))
    for value in (0.05, 0.5, 5.0):
        seconds.observe(value, chain="b")
    text = registry.render()
    assert "# TYPE x_files_total counter" in text and "# TYPE x_seconds histogram" in text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in parse_exposition(text)}
    assert samples[("x_files_total", (("chain", 'a "quoted"\nname'),))] == 1
    assert samples[("x_files_total", (("chain", "b"),))] == 2
    assert samples[("x_queue", ())] == 3
    assert samples[("x_seconds_bucket", (("chain", "b"), ("le", "0.1")))] == 1
    assert samples[("x_seconds_bucket", (("chain", "b"), ("le", "1")))] == 2
    assert samples[("x_seconds_bucket", (("chain", "b"), ("le", "+Inf")))] == 3
    assert samples[("x_seconds_count", (("chain", "b"),))] == 3
    assert samples[("x_seconds_sum", (("chain", "b"),))] == pytest.approx(5.55)


def test_counters_move_after_a_push(dirs, inproc_server):
    origin, out = dirs
    port = free_port()
    server = inproc_server({"chain": server_section(origin, port)}, metrics_port=0)
    url = server.metrics_server.url
    assert url.startswith("http://127.0.0.1:")
    before = metrics(url)
    assert counter(before, "trollmoves_files_delivered_total") == 0
    assert before["trollmoves_queue_length"] == 0
    content = b"z" * 12345
    path = write_file(origin, "a.dat", content)
    assert wait_until(lambda: counter(metrics(url), "trollmoves_files_announced_total") == 1, timeout=10)
    address = f"127.0.0.1:{port}"
    reply = request(address, Message(TOPIC, "push", {"uri": str(path), "uid": "a.dat", "destination": f"file://{out}/"}))
    assert reply.type == "file"
    blocker = out / "blocker"
    blocker.write_text("a file where a directory is wanted")
    failed = request(address, Message(TOPIC, "push", {"uri": str(path), "uid": "a.dat",
                                                      "destination": f"file://{blocker}/sub/"}))
    assert failed.type == "err"
    request(address, Message(TOPIC, "push", {"uri": "/etc/passwd", "destination": f"file://{out}/"}))
    request(address, b"garbage")

    after = metrics(url)
    label = '{chain="chain"}'
    assert after[f"trollmoves_files_announced_total{label}"] == 1
    assert after[f"trollmoves_files_requested_total{label}"] == 3
    assert after[f"trollmoves_files_delivered_total{label}"] == 1
    assert after[f"trollmoves_files_failed_total{label}"] == 1
    assert after[f"trollmoves_bytes_delivered_total{label}"] == len(content)
    assert after[f"trollmoves_transfer_duration_seconds_count{label}"] == 1
    assert after['trollmoves_transfer_duration_seconds_bucket{chain="chain",le="+Inf"}'] == 1
    assert after['trollmoves_requests_refused_total{chain="chain",reason="access"}'] == 1
    assert after[f"trollmoves_bad_messages_total{label}"] == 1
    assert 0 <= after['trollmoves_peer_last_seen_age_seconds{peer="127.0.0.1"}'] < 60
    assert after["trollmoves_queue_length"] == 0
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(url.replace("/metrics", "/other"), timeout=10)


def test_status_prints_a_table_for_a_running_server(tmp_path, dirs, server_process, runtime_dir):
    origin, out = dirs
    port = free_port()
    config = write_ini(tmp_path / "server.ini", {"chain": server_section(origin, port)})
    server = server_process(config, "--disable-backlog", "--metrics-port", "0")
    endpoint = read_endpoint(config)
    assert endpoint["pid"] == server.proc.pid and endpoint["role"] == "server"
    url = endpoint["url"]
    for i in range(3):
        path = write_file(origin, f"f{i}.dat", b"x" * 1000)
        assert wait_until(lambda n=i + 1: counter(metrics(url), "trollmoves_files_announced_total") == n, timeout=10)
        reply = request(f"127.0.0.1:{port}", Message(TOPIC, "push", {"uri": str(path), "uid": path.name,
                                                                      "destination": f"file://{out}/"}))
        assert reply.type == "file"

    shown = subprocess.run([TROLLMOVES, "status", str(config)], check=False, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("server  up ") and url in lines[0]
    header = next(line for line in lines if line.startswith("CHAIN"))
    assert header.split() == ["CHAIN", "ANNOUNCED", "REQUESTED", "DELIVERED", "FAILED", "BYTES", "MEAN", "TRANSFER"]
    row = lines[lines.index(header) + 1].split()
    assert row[:5] == ["chain", "3", "3", "3", "0"] and row[5:7] == ["2.9", "KiB"]
    assert "queue length: 0" in lines
    assert any(line.startswith("127.0.0.1") and line.endswith("s ago") for line in lines)
    by_url = subprocess.run([TROLLMOVES, "status", url], check=False, capture_output=True, text=True, timeout=60)
    assert by_url.returncode == 0 and by_url.stdout.splitlines()[2:6] == lines[2:6]  # the peer age moves on
    raw = subprocess.run([TROLLMOVES, "status", "--raw", url.rsplit(":", 1)[1].split("/")[0]],
                         check=False, capture_output=True, text=True, timeout=60)
    assert 'trollmoves_files_delivered_total{chain="chain"} 3' in raw.stdout

    server.kill(signal.SIGTERM)
    assert not endpoint_file(config).exists()  # a clean stop removes it
    gone = subprocess.run([TROLLMOVES, "status", str(config)], check=False, capture_output=True, text=True, timeout=60)
    assert gone.returncode == 2 and "no running process with metrics" in gone.stderr
    dead = subprocess.run([TROLLMOVES, "status", url, "--timeout", "2"],
                          check=False, capture_output=True, text=True, timeout=60)
    assert dead.returncode == 1 and "does not answer" in dead.stderr


def test_render_table_without_traffic():
    text = render_table(parse_exposition('trollmoves_info{role="server",version="1"} 1\n'), "http://x/metrics")
    assert text.splitlines()[0] == "server  http://x/metrics"
    assert "queue length: 0" in text and "refused: none" in text


def test_metrics_port_in_use_exits_2(tmp_path, dirs):
    import socket

    origin, _ = dirs
    config = write_ini(tmp_path / "server.ini", {"chain": server_section(origin, free_port())})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([TROLLMOVES, "server", "-p", str(free_port()), "--bind", "127.0.0.1",
                               "--metrics-port", str(port), str(config)],
                               check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}" in proc.stderr
