"""Bad input never kills the client: 10,000 seeded hostile messages on a bus it subscribes to
(malformed headers, bad JSON, wrong types, announcements naming bogus servers, files or uids;
fake results and pushes of other clients), then a normal file from our server is still delivered,
and the log stayed small (rate-limited)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator

import pytest
import zmq
from posttroll.message import Message
from support.bus import BusRecorder, free_port, wait_until
from support.client import client_section
from support.files import write_file
from support.fuzz import WEIRD_VALUES, bus_messages
from support.ini import write_ini
from support.processes import ClientProcess
from support.server import TOPIC, server_section

pytestmark = pytest.mark.timeout(180)

SEED = 20261125
COUNT = 10_000


def client_messages(seed: int, count: int, *, real_server: str, dead_server: str) -> Iterator[bytes]:
    """``count`` raw messages: half from the shared bus fuzzer, half aimed at the client's own paths."""
    rng = random.Random(seed)
    generic = bus_messages(seed, count, topic=TOPIC, local_file="/nonexistent/in/f.dat")
    addresses: list[object] = [real_server, dead_server, "127.0.0.1", "host:port", ":1", "127.0.0.1:0",
                               "127.0.0.1:99999", "a b:1", 5, None, [], {"x": 1}, "x" * 500]
    for i in range(count):
        _, raw = next(generic)
        if rng.random() < 0.5:
            yield raw
            continue
        uid = f"zz{i}.dat"
        data: object = rng.choice([
            {"uri": f"/in/{uid}", "uid": uid, "request_address": rng.choice(addresses)},
            {"uri": rng.choice(WEIRD_VALUES), "uid": uid, "request_address": real_server},
            {"uri": f"/in/{uid}", "uid": rng.choice(WEIRD_VALUES), "request_address": real_server},
            {"dataset": rng.choice([[], [{"uid": uid}], [{"uri": 1, "uid": 2}], "x", [None]]),
             "request_address": real_server},
            {"collection": [{"dataset": [{"uri": f"/in/{uid}", "uid": uid}]}], "request_address": real_server},
            {"uri": f"/in/{uid}", "uid": uid},  # another client's result
            {"uid": uid, "request_address": real_server},
            rng.choice(WEIRD_VALUES)])
        atype = rng.choice(["file", "file", "dataset", "collection", "push", "ack", "beat", "info", "err"])
        try:
            yield Message(TOPIC, atype, data).encode().encode()
        except Exception:  # posttroll refuses to encode it: send the raw JSON instead
            header = f"pytroll:/{TOPIC.lstrip('/')} {atype} u@h 2024-01-02T03:04:05 v1.2"
            yield f"{header} application/json {data!r}".encode()


def test_10000_hostile_messages_then_a_normal_file_is_delivered(tmp_path, dirs, server_process):
    origin, out = dirs
    request_port = free_port()
    server = server_process(write_ini(tmp_path / "server.ini", {"srv": server_section(origin, request_port)}),
                            "--disable-backlog")
    fuzzer = zmq.Context.instance().socket(zmq.PUB)
    fuzzer.setsockopt(zmq.SNDHWM, 0)  # the whole fuzz must reach the client
    fuzzer.setsockopt(zmq.LINGER, 0)
    fuzz_port = fuzzer.bind_to_random_port("tcp://127.0.0.1")
    client_port = free_port()
    config = write_ini(tmp_path / "client.ini", {"test": client_section(
        f"127.0.0.1:{server.pub_port} 127.0.0.1:{fuzz_port}", f"{out}/", client_port,
        state_directory=tmp_path / "state", give_up_after=0, transfer_req_timeout=0.5, request_attempts=1,
        req_timeout=0.5)})
    client = ClientProcess(config, tmp_path / "client.log")
    failures = BusRecorder([f"tcp://127.0.0.1:{client_port}"], ["/trollmoves/client/failed"])
    try:
        def probe(name: str) -> bool:
            write_file(origin, f"{name}{time.monotonic_ns()}.dat", b"probe")
            return wait_until(lambda: f"Delivered {name}" in client.log(), timeout=1.0)

        assert wait_until(lambda: probe("probe"), timeout=30, interval=0), client.log()[-3000:]
        before = len(client.log().splitlines())
        started = time.monotonic()
        for raw in client_messages(SEED, COUNT, real_server=f"127.0.0.1:{request_port}",
                                   dead_server=f"127.0.0.1:{free_port()}"):
            fuzzer.send(raw)
        fuzzer.send(f"pytroll:/{TOPIC.lstrip('/')} file u@h 2024-01-02T03:04:05 v1.2 text/ascii ".encode()
                    + b"z" * (17 << 20))  # over the client's message size limit
        # the last message: an announcement the server refuses; its published failure proves the
        # client went through the whole fuzz (one socket, in order)
        fuzzer.send(Message(TOPIC, "file", {"uri": "/nonexistent/sentinel.dat", "uid": "sentinel.dat",
                                            "request_address": f"127.0.0.1:{request_port}"}).encode().encode())
        assert failures.wait_for(lambda m: m.data.get("uid") == "sentinel.dat", timeout=120), client.log()[-3000:]
        write_file(origin, "real.dat", b"the real file after the fuzz\n")
        assert wait_until(lambda: "Delivered real.dat" in client.log(), timeout=60), client.log()[-3000:]
        elapsed = time.monotonic() - started
        assert client.alive()
        assert wait_until(lambda: probe("after"), timeout=30, interval=0)  # and it keeps serving
    finally:
        client.stop()
        failures.close()
        fuzzer.close(0)
    assert (out / "real.dat").read_bytes() == b"the real file after the fuzz\n"
    lines = client.log().splitlines()[before:]
    noisy = [line for line in lines if " DEBUG " not in line]
    stats = {"messages": COUNT, "seconds": round(elapsed, 2), "log_lines_not_debug": len(noisy),
             "failures_published": len(failures.messages),
             "tracebacks": sum("Traceback" in line for line in lines)}
    (tmp_path / "client-fuzz-summary.json").write_text(json.dumps(stats))
    print(json.dumps(stats))
    assert stats["tracebacks"] == 0, "\n".join(noisy[:80])
    assert len(noisy) < COUNT / 20, "\n".join(noisy[:80])
