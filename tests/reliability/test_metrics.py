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
from trollmoves_roles.observe.metrics import RoleMetrics, endpoint_file, read_endpoint
from trollmoves_roles.tools.status import parse_exposition, render_table

pytestmark = pytest.mark.timeout(120)


def test_exposition_format_round_trips():
    metrics = RoleMetrics("server")
    metrics.delivered.inc(chain='a "quoted"\nname')
    metrics.delivered.inc(2, chain="b")
    metrics.set_queue_length(lambda: 3)
    for value in (0.05, 0.5, 5.0):
        metrics.duration.observe(value, chain="b")
    text = metrics.render()
    assert "# TYPE trollmoves_files_delivered_total counter" in text
    assert "# TYPE trollmoves_transfer_duration_seconds histogram" in text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in parse_exposition(text)}
    assert samples[("trollmoves_files_delivered_total", (("chain", 'a "quoted"\nname'),))] == 1
    assert samples[("trollmoves_files_delivered_total", (("chain", "b"),))] == 2
    assert samples[("trollmoves_queue_length", ())] == 3
    seconds = "trollmoves_transfer_duration_seconds"
    assert samples[(f"{seconds}_bucket", (("chain", "b"), ("le", "0.1")))] == 1
    assert samples[(f"{seconds}_bucket", (("chain", "b"), ("le", "1.0")))] == 2
    assert samples[(f"{seconds}_bucket", (("chain", "b"), ("le", "+Inf")))] == 3
    assert samples[(f"{seconds}_count", (("chain", "b"),))] == 3
    assert samples[(f"{seconds}_sum", (("chain", "b"),))] == pytest.approx(5.55)


def test_the_health_window_holds_a_bucket_per_second_not_per_file():
    """Recent deliveries are summed per second: a burst of 10,000 files adds one bucket, and
    what was delivered more than the window ago (a second's grace) is no longer counted."""
    from trollmoves_roles.observe.metrics import _Window

    window = _Window(300.0)
    for i in range(10_000):
        window.add(1, 1000.0 + i / 100_000)
    window.add(2, 1001.5)
    assert window.total(1001.5) == 10_002 and len(window._starts) == 2
    assert window.total(1300.9) == 10_002
    assert window.total(1301.5) == 2
    assert window.total(1302.6) == 0 and not window._starts


def test_each_role_counts_in_its_own_registry_with_the_process_collectors():
    server, client = RoleMetrics("server"), RoleMetrics("client")
    server.delivered.inc(chain="a")
    server.refused.inc(chain="a", reason="access")
    assert server.delivered.value(chain="a") == 1 and client.delivered.value(chain="a") == 0
    assert server.refused.value(chain="a", reason="access") == 1
    text = client.render()
    assert 'trollmoves_info{role="client",version="' in text
    assert "trollmoves_files_delivered_total{" not in text and "_created" not in text
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
                 "process_start_time_seconds", "python_info"):
        assert f"\n{name}" in text, name


def test_a_role_without_chains_has_unlabelled_counters():
    downloader = RoleMetrics("downloader", chains=False)
    downloader.delivered.inc()
    downloader.duration.observe(0.2)
    text = downloader.render()
    assert "\ntrollmoves_files_delivered_total 1.0\n" in text
    assert downloader.duration.count() == 1


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
    assert header.split() == ["CHAIN", "ANNOUNCED", "REQUESTED", "DELIVERED", "FAILED", "BYTES", "MEAN", "TRANSFER",
                              "HEALTH"]
    row = lines[lines.index(header) + 1].split()
    assert row[:5] == ["chain", "3", "3", "3", "0"] and row[5:7] == ["2.9", "KiB"] and row[-1] == "ok"
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


def test_status_of_an_address_that_serves_no_metrics_exits_1():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<html><body>not metrics</body></html>\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Page) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            shown = subprocess.run([TROLLMOVES, "status", f"127.0.0.1:{httpd.server_address[1]}"],
                                   check=False, capture_output=True, text=True, timeout=60)
        finally:
            httpd.shutdown()
    assert shown.returncode == 1
    assert len(shown.stderr.strip().splitlines()) == 1 and "does not answer with Prometheus metrics" in shown.stderr
