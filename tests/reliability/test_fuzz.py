"""Bad input never kills a process: 10,000 hostile requests at a running server's request socket
and 10,000 hostile messages on the bus a ``listen`` chain subscribes to. Afterwards the server
still answers a normal ping and push, and the log stayed small (rate-limited)."""

from __future__ import annotations

import json
import time

import pytest
import zmq
from posttroll.message import Message
from support.bus import BusRecorder, free_port, wait_until
from support.files import write_file
from support.fuzz import bus_messages, request_payloads
from support.ini import write_ini
from support.metrics import counter, metrics
from support.reqrep import ping, request
from support.server import TOPIC, server_section
from trollmoves_roles.observe.metrics import read_endpoint

pytestmark = pytest.mark.timeout(240)

SEED = 20261124
COUNT = 10_000
WINDOW = 200
"""Requests in flight at once on the fuzzing DEALER socket."""


def fuzz_requests(address: str, payloads) -> tuple[int, int]:
    """Send every payload on one DEALER (as if from many REQ clients) keeping ``WINDOW`` in flight;
    return (sent, replies received)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://{address}")
    sent = received = 0
    try:
        for _, body in payloads:
            sock.send_multipart([b"", *body])
            sent += 1
            while sent - received >= WINDOW:
                assert sock.poll(30_000), f"no reply for 30 s after {sent} sent, {received} received"
                sock.recv_multipart()
                received += 1
        while received < sent and sock.poll(30_000):
            sock.recv_multipart()
            received += 1
    finally:
        sock.close(0)
    return sent, received


def oversized(address: str, size: int) -> bool:
    """Send one request over the size limit on its own socket; True if anything came back."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://{address}")
    try:
        sock.send_multipart([b"", b"pytroll://x push u@h 2024-01-02T03:04:05 v1.2 text/ascii " + b"z" * size])
        return bool(sock.poll(1000))
    finally:
        sock.close(0)


def log_lines(text: str, since: int) -> list[str]:
    return [line for line in text[since:].splitlines() if line.strip()]


def test_10000_hostile_requests_then_ping_and_push(tmp_path, dirs, server_process, runtime_dir):
    origin, out = dirs
    port = free_port()
    address = f"127.0.0.1:{port}"
    config = write_ini(tmp_path / "server.ini", {"chain": server_section(origin, port)})
    server = server_process(config, "--disable-backlog", "--metrics-port", "0")
    url = read_endpoint(config)["url"]
    announced = write_file(origin, "real.dat", b"the real file\n")
    assert wait_until(lambda: counter(metrics(url), "trollmoves_files_announced_total") >= 1, timeout=20)
    before = len(server.log())

    started = time.monotonic()
    sent, received = fuzz_requests(address, request_payloads(SEED, COUNT, announced=str(announced), topic=TOPIC,
                                                             destination=f"file://{out}/"))
    assert not oversized(address, 5 * 1024 * 1024)  # over the 4 MiB limit: zmq drops it and the peer
    assert not oversized(address, 17 * 1024 * 1024)
    elapsed = time.monotonic() - started

    assert server.alive(), server.log()[-3000:]
    assert (sent, received) == (COUNT, COUNT)  # every request, however bad, got exactly one reply
    reply = ping(address)
    assert reply is not None and reply.type == "pong"
    reply = request(address, Message(TOPIC, "push", {"uri": str(announced), "uid": "real.dat",
                                                     "destination": f"file://{out}/final/"}))
    assert reply is not None and reply.type == "file", reply.data
    assert (out / "final" / "real.dat").read_bytes() == b"the real file\n"

    values = metrics(url)
    bad = counter(values, "trollmoves_bad_messages_total")
    refused = counter(values, "trollmoves_requests_refused_total")
    assert bad + refused >= 0.8 * COUNT, (bad, refused)
    lines = log_lines(server.log(), before)
    warnings = [line for line in lines if " WARNING " in line or " ERROR " in line or "Traceback" in line]
    assert len(lines) < COUNT / 20, "\n".join(lines[:50])
    assert len(warnings) < 200, "\n".join(warnings[:50])
    (tmp_path / "fuzz-summary.json").write_text(json.dumps({
        "sent": sent, "replies": received, "seconds": round(elapsed, 2), "log_lines": len(lines),
        "warning_lines": len(warnings), "bad_counted": bad, "refused_counted": refused}))
    assert sorted(p.name for p in out.iterdir()) in (["final"], ["final", "real.dat"])  # only legit targets


def test_10000_hostile_bus_messages_on_a_listen_chain(tmp_path, dirs, server_process, runtime_dir):
    origin, out = dirs
    topic = "/fuzz/in"
    publisher = zmq.Context.instance().socket(zmq.PUB)
    publisher.setsockopt(zmq.SNDHWM, 0)  # queue everything: the whole fuzz must reach the chain
    publisher.setsockopt(zmq.LINGER, 0)
    pub_port = publisher.bind_to_random_port("tcp://127.0.0.1")
    port = free_port()
    address = f"127.0.0.1:{port}"
    config = write_ini(tmp_path / "server.ini", {"relay": {
        "listen": topic, "addresses": f"tcp://127.0.0.1:{pub_port}", "topic": TOPIC, "request_port": port,
        "request_address": "127.0.0.1"}})
    server = server_process(config, "--metrics-port", "0")
    url = read_endpoint(config)["url"]
    recorder = BusRecorder([f"tcp://127.0.0.1:{server.pub_port}"], [TOPIC])
    local = write_file(origin, "real.dat", b"relayed file\n")
    try:
        def republished() -> bool:
            publisher.send_string(Message(topic, "file", {"uri": str(local), "uid": "real.dat"}).encode())
            return bool(recorder.wait_for(lambda m: m.data.get("uri") == str(local), timeout=0.2))

        assert wait_until(republished, timeout=30), server.log()  # subscribed both ways
        before = len(server.log())
        recorder.messages.clear()
        for _, raw in bus_messages(SEED, COUNT, topic=topic, local_file=str(local)):
            publisher.send(raw)
        publisher.send(b"pytroll://fuzz/in/big file u@h 2024-01-02T03:04:05 v1.2 text/ascii " + b"z" * (17 << 20))
        # the chain works through the backlog, then a valid message is relayed again
        assert wait_until(republished, timeout=60), server.log()[-3000:]
        assert server.alive()
        reply = ping(address)
        assert reply is not None and reply.type == "pong"
        reply = request(address, Message(TOPIC, "push", {"uri": str(local), "uid": "real.dat",
                                                         "destination": f"file://{out}/"}))
        assert reply is not None and reply.type == "file", reply.data
        assert (out / "real.dat").read_bytes() == b"relayed file\n"
        # hostile messages were never relayed as files to serve: only the real one is
        relayed = {str(m.data.get("uri")) for m in recorder.messages if isinstance(m.data, dict)}
        assert relayed <= {str(local)}, relayed
        assert counter(metrics(url), "trollmoves_bad_messages_total") > 1000
        lines = log_lines(server.log(), before)
        assert len(lines) < COUNT / 20, "\n".join(lines[:50])
    finally:
        recorder.close()
        publisher.close(0)
