"""Our server inside → our mirror → our clients outside: files end to end, byte-identical."""

from __future__ import annotations

import itertools
import os
from collections import Counter
from pathlib import Path

import pytest
from support.bus import BusRecorder, free_port, wait_until
from support.client import InProcessClient, OurServer, client_section
from support.files import write_file
from support.ini import write_ini
from support.mirror import InProcessMirror, mirror_section

pytestmark = pytest.mark.timeout(180)

_probes = itertools.count()


def delivered(recorder: BusRecorder, prefix: str) -> dict[str, object]:
    """The client's published results (``file`` with ``origin``) by uid, for uids starting with ``prefix``."""
    return {m.data["uid"]: m for m in list(recorder.messages)
            if m.type == "file" and "origin" in m.data and str(m.data.get("uid", "")).startswith(prefix)}


def prime(inbox: Path, recorders: list[BusRecorder]) -> int:
    """Write probe files until every client delivered one (every subscription is up); return how many."""
    def all_delivered() -> bool:
        write_file(inbox, f"probe{next(_probes)}.dat", b"probe")
        return wait_until(lambda: all(delivered(r, "probe") for r in recorders), timeout=1.0)
    assert wait_until(all_delivered, timeout=30, interval=0.0), "no probe file made it through the mirror"
    return len({uid for r in recorders for uid in delivered(r, "probe")})


def test_files_flow_server_mirror_clients_fetched_once(tmp_path):
    server = OurServer(tmp_path / "srv")
    request_port = free_port()
    staging = tmp_path / "staging"
    config = write_ini(tmp_path / "mirror.ini", {"mirror": mirror_section(
        server.provider, request_port, destination=f"file://{staging}/", remove_delay=0)})
    mirror = InProcessMirror(config)
    clients, recorders, outs = [], [], []
    try:
        for name in ("one", "two"):
            port, out = free_port(), tmp_path / name
            client_config = write_ini(tmp_path / f"{name}.ini", {name: client_section(
                mirror.provider, f"{out}/", port, topic="/mirror/data")})
            clients.append(InProcessClient(client_config))
            recorders.append(BusRecorder([f"tcp://127.0.0.1:{port}"], ["/mirror/data"]))
            outs.append(out)
        probes = prime(server.inbox, recorders)
        contents = {f"f{i:02d}.dat": os.urandom(1000 + 97 * i) for i in range(20)}
        for name, content in contents.items():
            write_file(server.inbox, name, content)
        assert wait_until(lambda: all(len(delivered(r, "f")) == 20 for r in recorders), timeout=60), \
            [sorted(delivered(r, "f")) for r in recorders]
        assert wait_until(lambda: not list(staging.glob(".mirror-*")), timeout=10)
        fetches = Counter(uid for uid in mirror.chain().stager.recent if uid.startswith("f"))
    finally:
        for client in clients:
            client.stop()
        for recorder in recorders:
            recorder.close()
        mirror.stop()
        server.stop()
    for out, recorder in zip(outs, recorders, strict=True):
        for name, content in contents.items():
            assert (out / name).read_bytes() == content
        results = delivered(recorder, "f")
        assert {m.data["origin"] for m in results.values()} == {f"127.0.0.1:{request_port}"}
        assert {m.data["uri"] for m in results.values()} == {str(out / name) for name in contents}
    # every file was requested by both clients and fetched from the server once
    assert fetches == Counter(contents.keys())
    assert probes >= 1
