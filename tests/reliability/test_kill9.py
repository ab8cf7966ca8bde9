"""kill -9 of our server in the middle of a stream of files pulled by our client
(``trollmoves client`` as a subprocess): after the restart every file arrives exactly once,
none partial (checksums)."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import Counter

import pytest
from support.bus import BusRecorder, free_port, wait_until
from support.files import sha256, write_file
from support.ini import write_ini
from support.processes import TrollmovesProcess
from support.server import server_section

pytestmark = pytest.mark.timeout(180)

FILES = 300
SEED = 7


def contents() -> dict[str, bytes]:
    rng = random.Random(SEED)
    return {f"f{i:03d}.dat": rng.randbytes(rng.randint(100, 20_000)) for i in range(FILES)}


def delivered(recorder: BusRecorder) -> list[str]:
    """uids our client reports delivered (its ``file`` messages carry ``origin``)."""
    return [str(m.data["uid"]) for m in list(recorder.messages)
            if m.type == "file" and isinstance(m.data, dict) and "origin" in m.data]


def test_server_kill_9_mid_stream_every_file_once_none_partial(tmp_path, dirs, server_process):
    origin, out = dirs
    request_port, client_port = free_port(), free_port()
    server_config = write_ini(tmp_path / "server.ini", {"srv": server_section(origin, request_port)})
    server = server_process(server_config, "--state-directory", str(tmp_path / "state"))
    client_config = write_ini(tmp_path / "client.ini", {"test": {
        "providers": f"127.0.0.1:{server.pub_port}", "destination": f"file://{out}/", "topic": "/test/data",
        "publish_port": client_port, "nameservers": "false", "bind_address": "127.0.0.1",
        "transfer_req_timeout": 2, "request_attempts": 6, "max_requests_in_flight": 8}})
    client = TrollmovesProcess(["client", client_config], tmp_path / "client.log", cwd=tmp_path)
    recorder = BusRecorder([f"tcp://127.0.0.1:{client_port}"], ["/test/data"])
    files = contents()
    names = list(files)
    stats: dict[str, object] = {}
    try:
        # the whole path works before the stream starts (subscriptions joined both ways)
        def probe_delivered() -> bool:
            write_file(origin, f"probe{time.monotonic_ns()}.dat", b"probe")
            return bool(recorder.wait_for(lambda m: m.type == "file" and "origin" in m.data, timeout=1.0))

        assert wait_until(probe_delivered, timeout=30, interval=0), client.log()

        def produce() -> None:
            for name in names:
                write_file(origin, name, files[name])
                time.sleep(0.01)

        producer = threading.Thread(target=produce)
        started = time.monotonic()
        producer.start()
        assert wait_until(lambda: sum(u.startswith("f") for u in delivered(recorder)) >= FILES // 3, timeout=60)
        stats["delivered_at_kill"] = sum(u.startswith("f") for u in delivered(recorder))
        assert server.kill() == -9
        time.sleep(1.0)  # the stream goes on while the server is down
        server.start()
        stats["downtime_s"] = round(time.monotonic() - started, 2)
        producer.join(60)
        assert wait_until(lambda: len({u for u in delivered(recorder) if u.startswith("f")}) >= FILES, timeout=90), \
            f"{len(set(delivered(recorder)))} delivered\n" + client.log()[-3000:]
        stats["seconds"] = round(time.monotonic() - started, 2)
        time.sleep(1.0)  # late duplicates would show up now
    finally:
        recorder.close()
        client.stop()

    counts = Counter(u for u in delivered(recorder) if u.startswith("f"))
    assert set(counts) == set(names)
    assert [u for u, n in counts.items() if n > 1] == []  # exactly once
    for name, content in files.items():  # none partial, none wrong
        assert sha256(out / name) == hashlib.sha256(content).hexdigest(), name
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".part")]
    log = server.log()
    stats.update(files=FILES, pushes_served=log.count("Pushed "), leftover_temp_files=len(leftovers),
                 restored=[line.split("State in ")[1][-40:] for line in log.splitlines() if "State in" in line])
    (tmp_path / "kill9-summary.json").write_text(json.dumps(stats))
    # a push cut by the kill may leave its hidden temp file behind, never a file under its final name
    assert all(name.startswith(".") for name in leftovers)
