"""Upstream 0.19 server inside → our mirror (``trollmoves mirror``) → upstream 0.19 client outside.

Upstream's own mirror crashes at start in 0.19, so ours is checked against the peers it sits
between: the upstream server answers our fetches and acks, the upstream client requests from us.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from posttroll.message import Message
from support.bus import BusRecorder, free_port, wait_until
from support.client import UpstreamServer
from support.files import write_file
from support.ini import write_ini
from support.mirror import MirrorSubprocess, mirror_section, request, staging_dirs
from support.upstream import upstream_process  # noqa: F401 - fixture

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

_probes = itertools.count()


def start_upstream_client(upstream_process, tmp_path: Path, provider: str) -> tuple[BusRecorder, Path]:  # noqa: F811
    """``move_it_client.py`` on the mirror, with a plain publisher (nameservers = false, fixed port)."""
    out, publish_port = tmp_path / "out", free_port()
    config = write_ini(tmp_path / "client.ini", {"outside": {
        "providers": provider, "destination": f"file://{out}/", "topic": "/mirror/data",
        "publish_port": publish_port, "nameservers": "false"}})
    upstream_process("move_it_client.py", [str(config)])
    return BusRecorder([f"tcp://127.0.0.1:{publish_port}"], ["/mirror/data"]), out


def results(recorder: BusRecorder, prefix: str) -> dict[str, Message]:
    """The upstream client's published results by uid."""
    return {m.data["uid"]: m for m in list(recorder.messages)
            if m.type == "file" and "origin" in m.data and str(m.data.get("uid", "")).startswith(prefix)}


def prime(inbox: Path, recorder: BusRecorder, mirror: MirrorSubprocess) -> None:
    """Write probe files until one makes the whole trip (every subscription has joined)."""
    def probe_delivered() -> bool:
        write_file(inbox, f"probe{next(_probes)}.dat", b"probe")
        return wait_until(lambda: results(recorder, "probe"), timeout=2.0)
    assert wait_until(probe_delivered, timeout=60, interval=0.0), "no probe made the trip:\n" + mirror.log()


def test_upstream_server_our_mirror_upstream_client(upstream_process, tmp_path):  # noqa: F811
    server = UpstreamServer(upstream_process, tmp_path / "srv", extra={"delete": "True", "remove_delay": "0"})
    staging, request_port = tmp_path / "staging", free_port()
    config = write_ini(tmp_path / "mirror.ini", {"eumetcast": mirror_section(
        server.provider, request_port, destination=f"file://{staging}/", remove_delay=0,
        origin=f"{staging}/{{name}}.dat", info="sensor=seviri")})
    mirror = MirrorSubprocess(config, tmp_path / "mirror.log")
    mirror.wait_running()
    recorder, out = start_upstream_client(upstream_process, tmp_path, mirror.provider)
    try:
        prime(server.inbox, recorder, mirror)
        contents = {f"f{i}.dat": os.urandom(500 * (i + 1)) for i in range(6)}
        for name, content in contents.items():
            write_file(server.inbox, name, content)
        assert wait_until(lambda: len(results(recorder, "f")) == len(contents), timeout=60), mirror.log()
        assert wait_until(lambda: not staging_dirs(staging), timeout=10), mirror.log()
        # a file the mirror did not announce is refused, as upstream's server refuses one
        refused = request(f"127.0.0.1:{request_port}", Message("/mirror/data", "push", {
            "uri": str(server.inbox / "f0.dat"), "uid": "other.dat", "destination": f"file://{out}/"}))
    finally:
        status = mirror.stop()
        recorder.close()
    assert status == 0, mirror.log()
    for name, content in contents.items():
        assert (out / name).read_bytes() == content
        result = results(recorder, "f")[name]
        assert result.data["origin"] == f"127.0.0.1:{request_port}"
        assert result.data["uri"] == str(out / name)
        assert result.data["sensor"] == "seviri" and result.data["name"] == name[:-4]
    assert refused.type == "err" and "not announced" in refused.data
    log = mirror.log()
    assert log.count("Fetched f") == len(contents), log
    assert "ack to" not in log  # every ack to the upstream server was confirmed
    assert "Traceback" not in log
    # the upstream server (delete = True) took our pushes and acks without complaint and cleaned up
    assert wait_until(lambda: not list(server.inbox.glob("f*.dat")), timeout=10)
    server_log = server.process.log()
    assert "Traceback" not in server_log and " ERROR " not in server_log, server_log
