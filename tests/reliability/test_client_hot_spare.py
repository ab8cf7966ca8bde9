"""A primary/secondary client pair (hot spare) pulling 500 files from our server, the primary
killed with SIGKILL mid-stream: measure delivered / lost / duplicated. The secondary lists the
primary's publisher as a provider and waits ``processing_delay`` before taking a file over."""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from datetime import datetime

import pytest
from support.bus import free_port, wait_until
from support.client import HotSparePair, client_section, prime, results
from support.files import payload, write_file
from support.ini import write_ini
from support.processes import ClientProcess
from support.server import server_section

pytestmark = pytest.mark.timeout(120)

FILES = 500
IN_FLIGHT = 4


def test_primary_killed_mid_stream_secondary_takes_over(tmp_path, dirs, server_process):
    origin, out = dirs
    rng = random.Random(3)
    files = {f"f{i:03d}.dat": rng.randbytes(rng.randint(50, 3000)) for i in range(FILES)}
    request_port = free_port()
    server = server_process(write_ini(tmp_path / "server.ini", {"srv": server_section(origin, request_port)}),
                            "--disable-backlog")
    provider = f"127.0.0.1:{server.pub_port}"
    primary_port, secondary_port = free_port(), free_port()
    primary = ClientProcess(write_ini(tmp_path / "primary.ini", {"test": client_section(
        provider, f"{out}/", primary_port, state_directory=tmp_path / "primary-state",
        max_requests_in_flight=IN_FLIGHT)}), tmp_path / "primary.log")
    secondary = ClientProcess(write_ini(tmp_path / "secondary.ini", {"test": client_section(
        f"{provider} 127.0.0.1:{primary_port}", f"{out}/", secondary_port, processing_delay=1.0,
        transfer_req_timeout=2, state_directory=tmp_path / "secondary-state",
        max_requests_in_flight=IN_FLIGHT)}), tmp_path / "secondary.log")
    names = list(files)
    try:
        def probe() -> bool:
            write_file(origin, f"probe{time.monotonic_ns()}.dat", b"probe")
            return wait_until(lambda: "Delivered probe" in primary.log(), timeout=1.0)

        assert wait_until(probe, timeout=30, interval=0), primary.log()[-3000:]
        time.sleep(1.5)  # the secondary has joined the primary's publisher (probe results seen)
        for name in names[:250]:
            write_file(origin, name, files[name])
        assert wait_until(lambda: len(primary.delivered()) >= 100, timeout=30)
        killed_at = time.time()
        assert primary.kill() == -9
        killed_after = len(primary.delivered())
        for name in names[250:]:
            write_file(origin, name, files[name])

        def everything() -> bool:
            return set(primary.delivered()) | set(secondary.delivered()) >= set(names)

        assert wait_until(everything, timeout=60), secondary.log()[-3000:]
        time.sleep(2.0)  # late duplicates would show up now
    finally:
        primary.stop()
        secondary.stop()
    by_primary, by_secondary = primary.delivered(), secondary.delivered()
    delivered = set(by_primary) | set(by_secondary)
    both = set(by_primary) & set(by_secondary)
    stats = {"files": FILES, "primary_delivered_before_kill": killed_after, "by_primary": len(by_primary),
             "by_secondary": len(by_secondary), "delivered": len(delivered), "lost": FILES - len(delivered),
             "duplicated": sum(n - 1 for n in (by_primary + by_secondary).values() if n > 1),
             "duplicated_files": sorted(both)}
    (tmp_path / "hot-spare-summary.json").write_text(json.dumps(stats))
    print(json.dumps(stats))
    assert delivered == set(names)
    assert all(n == 1 for n in by_secondary.values()) and all(n == 1 for n in by_primary.values())
    # Only what the primary had in flight when it died, or had just delivered (its result
    # messages may die with the process before zmq sends them), can have been fetched by both.
    delivered_at = {name: datetime.fromisoformat(stamp).timestamp()
                    for stamp, name in re.findall(r"^\[(\S+) .*?Delivered (f\d+\.dat) from", primary.log(), re.M)}
    late = {name for name in both if delivered_at.get(name, killed_at) >= killed_at - 1.0}
    in_flight = both - set(delivered_at)
    assert len(in_flight) <= IN_FLIGHT + 1, sorted(in_flight)
    assert both <= late | in_flight, sorted(both - late - in_flight)
    for name, content in files.items():
        assert hashlib.sha256((out / name).read_bytes()).digest() == hashlib.sha256(content).digest(), name


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_hot_spare_primary_killed_every_file_once(servers, tmp_path):
    server = servers("srv")
    out = tmp_path / "out"
    pair = HotSparePair(tmp_path, server.provider, out)
    contents = {f"f{i:03d}.dat": payload(i) for i in range(80)}

    try:
        prime(lambda name: write_file(server.inbox, f"{name}.dat", b"probe"), pair.by_primary)
        spares = iter(range(1000))

        def secondary_stands_down() -> bool:
            """A probe the primary delivered is left alone by the secondary: it hears the primary."""
            name = f"spare{next(spares)}"
            write_file(server.inbox, f"{name}.dat", b"probe")
            pair.by_primary.wait_for(lambda m: m in results(pair.by_primary, "spare")
                                     and m.data["uid"] == f"{name}.dat", timeout=5)
            time.sleep(1.5)  # three processing delays: a secondary that did not hear the primary fetches by now
            return not any(m.data["uid"] == f"{name}.dat" for m in results(pair.by_secondary, "spare"))

        assert wait_until(secondary_stands_down, timeout=60, interval=0), "the secondary never heard the primary"
        pair.kill_primary_midway(server.inbox, contents, before=40, delivered=5)
    finally:
        pair.stop()
    pair.check(contents)
