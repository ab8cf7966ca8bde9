"""A burst of 5,000 announcements from our server to our client while the client is slow (two
requests in flight, every announcement journalled): the client drops nothing, each file arrives
once. The burst is the server's backlog (5,000 files present at its start, announced at full
speed once its ``--announce-delay`` is over), so that no file system watcher paces it.

Our publishers queue up to 100,000 messages per subscriber and the client's SUB socket has no
receive limit, so no announcement is lost on the bus; reconciliation is the second line."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from support.bus import free_port, wait_until
from support.client import client_section
from support.files import write_file
from support.ini import write_ini
from support.processes import ClientProcess
from support.server import server_section

pytestmark = pytest.mark.timeout(120)

BURST = 5000


def test_burst_of_5000_announcements_slow_client_drops_nothing(tmp_path, dirs, server_process):
    origin, out = dirs
    request_port = free_port()
    names = [f"f{i:04d}.dat" for i in range(BURST)]
    for name in names:
        write_file(origin, name, name.encode())
    server = server_process(write_ini(tmp_path / "server.ini", {"srv": server_section(origin, request_port)}),
                            "--announce-delay", "5")
    started = time.monotonic()
    config = write_ini(tmp_path / "client.ini", {"test": client_section(
        f"127.0.0.1:{server.pub_port}", f"{out}/", free_port(), state_directory=tmp_path / "state",
        max_requests_in_flight=2, transfer_req_timeout=30)})
    client = ClientProcess(config, tmp_path / "client.log")
    try:
        assert wait_until(lambda: "Subscribing to" in client.log(), timeout=5)
        assert wait_until(lambda: len(client.delivered(r"f\d+\.dat")) >= BURST, timeout=90), \
            f"{len(client.delivered())} delivered; missing {sorted(set(names) - set(client.delivered()))[:20]}"
        seconds = time.monotonic() - started
        time.sleep(1.0)
    finally:
        client.stop()
    delivered = client.delivered(r"f\d+\.dat")
    stats = {"burst": BURST, "delivered": len(delivered),
             "lost": BURST - len(delivered), "duplicated": sum(n - 1 for n in delivered.values()),
             "seconds": round(seconds, 2), "pending_peak": _peak_pending(client.log())}
    (tmp_path / "slow-consumer-summary.json").write_text(json.dumps(stats))
    print(json.dumps(stats))
    assert delivered == Counter(names)
    assert all((out / name).read_bytes() == name.encode() for name in names)


def _peak_pending(log: str) -> int:
    """How far the client fell behind: announcements received minus deliveries, at its worst (from its log)."""
    peak = behind = 0
    for line in log.splitlines():
        if "Requesting f" in line:
            behind += 1
        elif "Delivered f" in line:
            behind -= 1
        peak = max(peak, behind)
    return peak
